package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
)

// fakeReader hands out queued messages and records the committed offset
// of each partition.
type fakeReader struct {
	msgs chan kafka.Message
	mu   sync.Mutex
	comm map[int]int64
}

func newFakeReader() *fakeReader {
	return &fakeReader{msgs: make(chan kafka.Message, 1000), comm: map[int]int64{}}
}

func (f *fakeReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	select {
	case m := <-f.msgs:
		return m, nil
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

func (f *fakeReader) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		f.comm[m.Partition] = max(f.comm[m.Partition], m.Offset+1)
	}
	return nil
}

func (f *fakeReader) committed(p int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.comm[p]
}

func (f *fakeReader) push(t *testing.T, partition int, offset int64, pollID id.ID) string {
	t.Helper()
	ev, err := events.NewPollClosed(closedPoll(pollID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ev)
	f.msgs <- kafka.Message{Partition: partition, Offset: offset, Value: body}
	return ev.ID
}

func TestTrackerCommitsOnlyTheFinishedPrefix(t *testing.T) {
	tr := newTracker()
	a := tr.add(kafka.Message{Partition: 0, Offset: 10}, 1)
	b := tr.add(kafka.Message{Partition: 0, Offset: 11}, 2)
	tr.add(kafka.Message{Partition: 1, Offset: 5}, 0)
	c := tr.add(kafka.Message{Partition: 0, Offset: 12}, 1)
	steps := []struct {
		name   string
		finish []*entry
		want   map[int]int64 // partition → last offset to commit
		n      int
	}{
		{"nothing on 0 finished; 1 has no deliveries", nil, map[int]int64{1: 5}, 1},
		{"a later event finished first: held", []*entry{c, b}, map[int]int64{}, 0},
		{"the head finishes, one of b's two still out", []*entry{a}, map[int]int64{0: 10}, 1},
		{"b's last: b and c go", []*entry{b}, map[int]int64{0: 12}, 2},
		{"empty", nil, map[int]int64{}, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for _, e := range st.finish {
				tr.finish(e)
			}
			msgs, n := tr.committable()
			got := map[int]int64{}
			for _, m := range msgs {
				got[m.Partition] = m.Offset
			}
			if n != st.n || len(got) != len(st.want) {
				t.Fatalf("committable %v (%d), want %v (%d)", got, n, st.want, st.n)
			}
			for p, o := range st.want {
				if got[p] != o {
					t.Fatalf("partition %d: %d, want %d", p, got[p], o)
				}
			}
		})
	}
}

// TestRunAHangingReceiverHoldsOnlyItsOwnLane: one poll's webhook hangs,
// another poll's answers; the second receives every event (after at most
// one Timeout, while the hanging lanes' first attempts hold the answering
// pool), the hanging one's events stay uncommitted on their partition,
// attempts in flight never pass the two pools, and the lanes end with the
// process.
func TestRunAHangingReceiverHoldsOnlyItsOwnLane(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	var got sync.Map
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get(HeaderEventID), true)
	}))
	defer ok.Close()

	st := newMemStore()
	s := New(Config{AllowPrivate: true, Timeout: 500 * time.Millisecond, Concurrency: 2, RetryConcurrency: 1, MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond}, st, zap.NewNop(), time.Now, nil)
	counting := &countingTransport{next: s.client.Transport}
	s.client.Transport = counting
	ctx := context.Background()
	slow, fast := id.New(), id.New()
	// Three webhooks on the hanging poll: more than Concurrency.
	for range 3 {
		if _, err := s.Create(ctx, slow, hang.URL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, fast, ok.URL); err != nil {
		t.Fatal(err)
	}
	r := newFakeReader()
	r.push(t, 0, 0, slow)
	var want []string
	for i := range 20 {
		want = append(want, r.push(t, 1, int64(i), fast))
	}
	r.push(t, 0, 1, slow)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(runCtx, r) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.committed(1) != 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the answering webhook's partition committed to %d of 20", r.committed(1))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, evID := range want {
		if _, ok := got.Load(evID); !ok {
			t.Fatalf("event %s not received by the answering webhook", evID)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if r.committed(0) != 0 {
		t.Fatalf("the hanging webhook's partition committed to %d", r.committed(0))
	}
	if m := counting.max.Load(); m > 3 {
		t.Fatalf("%d attempts in flight at once; Concurrency + RetryConcurrency is 3", m)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended while a receiver hung")
	}
}

// countingTransport keeps the most requests it had in flight at once.
type countingTransport struct {
	next     http.RoundTripper
	now, max atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	return c.next.RoundTrip(r)
}

// TestRunHoldsAtMostMaxPendingEvents: behind a receiver that hangs, the
// process fetches MaxPending events and no more until one finishes.
func TestRunHoldsAtMostMaxPendingEvents(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	st := newMemStore()
	s := New(Config{AllowPrivate: true, Timeout: time.Minute, MaxPending: 3}, st, zap.NewNop(), time.Now, nil)
	pollID := id.New()
	if _, err := s.Create(context.Background(), pollID, hang.URL); err != nil {
		t.Fatal(err)
	}
	r := newFakeReader()
	for i := range 10 {
		r.push(t, 0, int64(i), pollID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, r) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.msgs) > 7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if left := len(r.msgs); left != 7 {
		t.Fatalf("%d of 10 events fetched with MaxPending 3", 10-left)
	}
	cancel()
	<-done
	if c := r.committed(0); c != 0 {
		t.Fatalf("committed to %d behind a hanging receiver", c)
	}
}
