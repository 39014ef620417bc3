package kafkax

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"
)

// fakeBroker answers metadata (partitions 0-2 led by broker 1, 3 by
// broker 2) and records produce requests; each produce waits for a token
// on gate when gate is set.
type fakeBroker struct {
	mu   sync.Mutex
	sent [][]int32 // partitions of each produce request, in order
	gate chan struct{}
	fail error
}

func (f *fakeBroker) RoundTrip(ctx context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	switch r := req.(type) {
	case *metadata.Request:
		parts := []metadata.ResponsePartition{{PartitionIndex: 0, LeaderID: 1}, {PartitionIndex: 1, LeaderID: 1},
			{PartitionIndex: 2, LeaderID: 1}, {PartitionIndex: 3, LeaderID: 2}}
		return &metadata.Response{Topics: []metadata.ResponseTopic{{Name: "t", Partitions: parts}}}, nil
	case *produce.Request:
		var ps []int32
		res := &produce.Response{}
		for _, t := range r.Topics {
			rt := produce.ResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				ps = append(ps, p.Partition)
				rt.Partitions = append(rt.Partitions, produce.ResponsePartition{Partition: p.Partition, BaseOffset: int64(p.Partition) * 100})
			}
			res.Topics = append(res.Topics, rt)
		}
		f.mu.Lock()
		f.sent = append(f.sent, ps)
		gate := f.gate
		f.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		f.mu.Lock()
		fail := f.fail
		f.mu.Unlock()
		if fail != nil {
			return nil, fail
		}
		return res, nil
	}
	return nil, errors.New("unexpected request")
}

func (f *fakeBroker) requests() [][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func produceReq(partition int32) *produce.Request {
	return &produce.Request{Acks: -1, Timeout: 5000, Topics: []produce.RequestTopic{{Topic: "t",
		Partitions: []produce.RequestPartition{{Partition: partition}}}}}
}

type answer struct {
	partition int32
	offset    int64
	err       error
}

// send runs RoundTrip for each partition in its own goroutine, in order,
// each started once the coalescer holds the previous one.
func send(t *testing.T, c *Coalescer, parts ...int32) <-chan answer {
	out := make(chan answer, len(parts))
	for _, p := range parts {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			msg, err := c.RoundTrip(ctx, kafka.TCP("127.0.0.1:9092"), produceReq(p))
			a := answer{partition: p, err: err}
			if err == nil {
				r := msg.(*produce.Response)
				if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 || r.Topics[0].Partitions[0].Partition != p {
					t.Errorf("partition %d got response %+v", p, r)
				}
				a.offset = r.Topics[0].Partitions[0].BaseOffset
			}
			out <- a
		}()
		waitQueued(t, c)
	}
	return out
}

// waitQueued lets a just-started call reach its lane.
func waitQueued(t *testing.T, c *Coalescer) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
}

func TestCoalescerMergesWhileALeaderIsBusy(t *testing.T) {
	f := &fakeBroker{gate: make(chan struct{})}
	c := NewCoalescer(f)
	// p0 goes at once (idle lane) and holds the lane; p1, p2 and a second
	// batch of p1 wait; p3 has another leader and goes at once too.
	answers := send(t, c, 0, 1, 2, 1, 3)
	if got := f.requests(); len(got) != 2 || !slices.Equal(got[0], []int32{0}) || !slices.Equal(got[1], []int32{3}) {
		t.Fatalf("while the lanes are busy: requests %v, want [[0] [3]]", got)
	}
	close(f.gate)
	for range 5 {
		a := <-answers
		if a.err != nil || a.offset != int64(a.partition)*100 {
			t.Fatalf("partition %d: offset %d, err %v", a.partition, a.offset, a.err)
		}
	}
	// The waiting batches went together, except the second batch of p1,
	// which follows the first in the next request (order per partition).
	want := [][]int32{{0}, {3}, {1, 2}, {1}}
	if got := f.requests(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	if r, b := c.Stats(); r != 4 || b != 5 {
		t.Fatalf("stats: %d requests, %d batches; want 4, 5", r, b)
	}
}

func TestCoalescerFailsEveryBatchOfAFailedRequest(t *testing.T) {
	f := &fakeBroker{gate: make(chan struct{})}
	c := NewCoalescer(f)
	answers := send(t, c, 0, 1, 2)
	f.mu.Lock()
	f.fail = errors.New("broken pipe")
	f.mu.Unlock()
	close(f.gate)
	for range 3 {
		if a := <-answers; a.err == nil {
			t.Fatalf("partition %d: no error from a failed request", a.partition)
		}
	}
	if got := f.requests(); len(got) != 2 || len(got[1]) != 2 {
		t.Fatalf("requests %v, want [[0] [1 2]]", got)
	}
}

func TestCoalescerPassesOtherRequestsThrough(t *testing.T) {
	f := &fakeBroker{}
	c := NewCoalescer(f)
	unacked := produceReq(0)
	unacked.Acks = 0
	if _, err := c.RoundTrip(context.Background(), kafka.TCP("x:1"), unacked); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RoundTrip(context.Background(), kafka.TCP("x:1"), &metadata.Request{TopicNames: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Stats(); r != 0 {
		t.Fatalf("%d requests counted for pass-throughs", r)
	}
}
