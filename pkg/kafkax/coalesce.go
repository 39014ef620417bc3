package kafkax

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"
)

// Coalescer is a kafka.RoundTripper that merges produce requests bound for
// the same partition leader into one request on the wire.
//
// kafka-go's Writer batches per partition and sends each partition's batch
// as its own ProduceRequest. Votes are keyed by voter over many partitions
// (per-voter order), so at a few thousand votes a second most batches hold
// one or two messages and the broker sees about one request per vote. The
// Writer's batches of different partitions are sent concurrently, each from
// its partition's goroutine, so they meet here: while a request to a
// leader is in flight, the batches that arrive for that leader wait, and
// all of them go out together as one request when it returns. An idle lane
// sends at once, so a lone vote pays no added wait; under load the batch
// grows with the broker's round trip (self-clocking, like Nagle's rule
// without its timer).
//
// Everything else of the Writer is kept: its per-partition order (a
// partition has at most one batch in flight), retries (a failed merged
// request fails each batch in it, and the Writer retries each with fresh
// records), acks, and per-message headers. Requests other than acked
// single-partition produces pass through unchanged.
type Coalescer struct {
	next kafka.RoundTripper

	mu    sync.Mutex
	lanes map[laneKey]*lane

	leaders leaderCache

	requests atomic.Int64 // produce requests sent to brokers
	batches  atomic.Int64 // partition batches they carried
}

// NewCoalescer wraps next (kafka.DefaultTransport when nil).
func NewCoalescer(next kafka.RoundTripper) *Coalescer {
	if next == nil {
		next = kafka.DefaultTransport
	}
	return &Coalescer{next: next, lanes: map[laneKey]*lane{}, leaders: leaderCache{ttl: time.Second}}
}

// Stats returns how many produce requests went to the brokers and how many
// partition batches they carried since the start.
func (c *Coalescer) Stats() (requests, batches int64) {
	return c.requests.Load(), c.batches.Load()
}

// maxPerRequest caps the partition batches one merged request carries.
const maxPerRequest = 256

// laneKey is what requests must share to be merged.
type laneKey struct {
	addr   string
	leader int32
	acks   int16
	txn    string
}

type lane struct {
	busy  bool
	queue []*call
}

type call struct {
	req  *produce.Request
	ctx  context.Context
	addr net.Addr
	done chan result
}

type result struct {
	msg kafka.Response
	err error
}

// RoundTrip implements kafka.RoundTripper.
func (c *Coalescer) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	r, ok := req.(*produce.Request)
	if !ok || r.Acks == 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return c.next.RoundTrip(ctx, addr, req)
	}
	t := &r.Topics[0]
	leader, ok := c.leaders.get(ctx, c.next, addr, t.Topic, t.Partitions[0].Partition)
	if !ok {
		c.requests.Add(1)
		c.batches.Add(1)
		return c.next.RoundTrip(ctx, addr, req)
	}
	k := laneKey{addr: addr.String(), leader: leader, acks: r.Acks, txn: r.TransactionalID}
	cl := &call{req: r, ctx: ctx, addr: addr, done: make(chan result, 1)}
	c.mu.Lock()
	l := c.lanes[k]
	if l == nil {
		l = &lane{}
		c.lanes[k] = l
	}
	l.queue = append(l.queue, cl)
	start := !l.busy
	l.busy = true
	c.mu.Unlock()
	if start {
		go c.run(l)
	}
	select {
	case res := <-cl.done:
		return res.msg, res.err
	case <-ctx.Done():
		// The request may still be sent, as when kafka-go's own transport
		// is abandoned mid-flight; the Writer treats it as failed.
		return nil, ctx.Err()
	}
}

// run sends a lane's queue, merged, until it is empty.
func (c *Coalescer) run(l *lane) {
	for {
		c.mu.Lock()
		if len(l.queue) == 0 {
			l.busy = false
			c.mu.Unlock()
			return
		}
		take, rest := split(l.queue)
		l.queue = rest
		c.mu.Unlock()
		if len(take) > 0 {
			c.send(take)
		}
	}
}

// split takes at most maxPerRequest calls, never two of one partition (a
// second batch of a partition waits for the next request, behind the
// first: order per partition is kept). A call whose caller gave up before
// it was sent is answered and dropped: the Writer already counts it failed
// and retries it, so sending it too could only duplicate it.
func split(queue []*call) (take, rest []*call) {
	seen := make(map[partitionKey]bool, len(queue))
	for _, cl := range queue {
		if err := cl.ctx.Err(); err != nil {
			cl.done <- result{nil, err}
			continue
		}
		k := partitionKey{cl.req.Topics[0].Topic, cl.req.Topics[0].Partitions[0].Partition}
		if seen[k] || len(take) == maxPerRequest {
			rest = append(rest, cl)
			continue
		}
		seen[k] = true
		take = append(take, cl)
	}
	return take, rest
}

type partitionKey struct {
	topic     string
	partition int32
}

// send writes the calls as one request and hands each its partition's part
// of the response.
func (c *Coalescer) send(calls []*call) {
	c.requests.Add(1)
	c.batches.Add(int64(len(calls)))
	if len(calls) == 1 {
		cl := calls[0]
		msg, err := c.next.RoundTrip(cl.ctx, cl.addr, cl.req)
		cl.done <- result{msg, err}
		return
	}
	merged := &produce.Request{TransactionalID: calls[0].req.TransactionalID, Acks: calls[0].req.Acks}
	byTopic := map[string]int{}
	var deadline time.Time
	for _, cl := range calls {
		merged.Timeout = max(merged.Timeout, cl.req.Timeout)
		if d, ok := cl.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
		t := cl.req.Topics[0]
		i, ok := byTopic[t.Topic]
		if !ok {
			i = len(merged.Topics)
			byTopic[t.Topic] = i
			merged.Topics = append(merged.Topics, produce.RequestTopic{Topic: t.Topic})
		}
		merged.Topics[i].Partitions = append(merged.Topics[i].Partitions, t.Partitions[0])
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(defaultMergedTimeout)
	}
	// The merged request outlives any one caller that gives up: the others
	// still wait for it.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	msg, err := c.next.RoundTrip(ctx, calls[0].addr, merged)
	cancel()
	if err != nil {
		// Perhaps the leaders moved: look them up afresh for the retries.
		c.leaders.clear()
		for _, cl := range calls {
			cl.done <- result{nil, err}
		}
		return
	}
	res, ok := msg.(*produce.Response)
	if !ok {
		for _, cl := range calls {
			cl.done <- result{nil, errors.New("kafkax: unexpected response to a produce request")}
		}
		return
	}
	parts := make(map[partitionKey]produce.ResponsePartition, len(calls))
	for _, t := range res.Topics {
		for _, p := range t.Partitions {
			parts[partitionKey{t.Topic, p.Partition}] = p
		}
	}
	for _, cl := range calls {
		t := cl.req.Topics[0]
		p, ok := parts[partitionKey{t.Topic, t.Partitions[0].Partition}]
		if !ok {
			cl.done <- result{nil, errors.New("kafkax: the broker's produce response has no entry for a partition it was sent")}
			continue
		}
		cl.done <- result{&produce.Response{ThrottleTimeMs: res.ThrottleTimeMs,
			Topics: []produce.ResponseTopic{{Topic: t.Topic, Partitions: []produce.ResponsePartition{p}}}}, nil}
	}
}

// defaultMergedTimeout bounds a merged request whose callers set no
// deadline (the Writer always sets one: its WriteTimeout).
const defaultMergedTimeout = 10 * time.Second

// leaderCache remembers each partition's leader from the transport's
// metadata (which kafka.Transport itself serves from its cache).
type leaderCache struct {
	ttl time.Duration

	mu      sync.Mutex
	at      time.Time
	leaders map[partitionKey]int32
}

func (lc *leaderCache) get(ctx context.Context, next kafka.RoundTripper, addr net.Addr, topic string, partition int32) (int32, bool) {
	k := partitionKey{topic, partition}
	lc.mu.Lock()
	if time.Since(lc.at) < lc.ttl {
		if l, ok := lc.leaders[k]; ok {
			lc.mu.Unlock()
			return l, true
		}
	}
	lc.mu.Unlock()
	msg, err := next.RoundTrip(ctx, addr, &metadata.Request{TopicNames: []string{topic}})
	if err != nil {
		return 0, false
	}
	res, ok := msg.(*metadata.Response)
	if !ok {
		return 0, false
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.leaders == nil || time.Since(lc.at) >= lc.ttl {
		lc.leaders, lc.at = map[partitionKey]int32{}, time.Now()
	}
	for _, t := range res.Topics {
		if t.ErrorCode != 0 {
			continue
		}
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.LeaderID >= 0 {
				lc.leaders[partitionKey{t.Name, p.PartitionIndex}] = p.LeaderID
			}
		}
	}
	l, ok := lc.leaders[k]
	return l, ok
}

func (lc *leaderCache) clear() {
	lc.mu.Lock()
	lc.at = time.Time{}
	lc.mu.Unlock()
}
