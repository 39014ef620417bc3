package votes

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

// topic is a fake votes topic and DLQ: it hands out msgs, records
// commits and what was produced.
type topic struct {
	mu        sync.Mutex
	msgs      []kafka.Message
	committed []kafka.Message
	produced  []kafka.Message
	err       error // returned by WriteMessages
}

func (f *topic) FetchMessage(ctx context.Context) (kafka.Message, error) {
	f.mu.Lock()
	if len(f.msgs) > 0 {
		m := f.msgs[0]
		f.msgs = f.msgs[1:]
		f.mu.Unlock()
		return m, nil
	}
	f.mu.Unlock()
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

func (f *topic) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed = append(f.committed, msgs...)
	return nil
}

func (f *topic) Stats() kafka.ReaderStats { return kafka.ReaderStats{} }

func (f *topic) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.produced = append(f.produced, msgs...)
	return nil
}

// nopFence lets follow-ups through at once.
type nopFence struct{}

func (nopFence) Enter(context.Context, []id.ID) (func(), error) { return func() {}, nil }

// A message that does not decode is poison: dead-lettered at once with
// its error, attempts and source headers, then committed.
func TestWorkerDeadLettersMalformedAndCommits(t *testing.T) {
	in := &topic{msgs: []kafka.Message{{Topic: "tally.votes", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("{")}}}
	dlq := &topic{}
	reg := prometheus.NewRegistry()
	drain := vote.NewDrainer(vote.DrainConfig{PoisonAttempts: 2, MaxBackoff: time.Millisecond},
		vote.DrainDeps{Log: zap.NewNop(), Registry: reg,
			Votes: vote.NewService(vote.Config{}, vote.Deps{Fence: nopFence{}, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())})
	w := NewWorker(WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 2},
		WorkerDeps{DLQ: dlq, Votes: drain, Log: zap.NewNop(), Registry: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in.mu.Lock()
		n := len(in.committed)
		in.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(in.committed) != 1 || len(dlq.produced) != 1 {
		t.Fatalf("committed %d, dead-lettered %d; want 1 and 1", len(in.committed), len(dlq.produced))
	}
	h := map[string]string{}
	for _, x := range dlq.produced[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h["attempts"] != "1" || h["source"] != "tally.votes/3/42" || h["error"] == "" || string(dlq.produced[0].Key) != "k" {
		t.Fatalf("dead letter %q headers %v", dlq.produced[0].Key, h)
	}
}

// A timed-out produce while Kafka acknowledged recently is slow: shed
// (vote.ErrShed), the queue stays available. Otherwise it is down: the
// queue is unavailable for the cooldown.
func TestEnqueueSlowVersusDown(t *testing.T) {
	now := time.Now()
	p := &poll.Poll{ID: id.New(), OptionsVersion: 1}
	b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(), RequestID: id.New(), OptionIDs: []id.ID{id.New()}}
	cfg := Config{ProduceTimeout: time.Second, KafkaCooldown: time.Minute, KafkaDownAfter: 5 * time.Second}
	for _, tc := range []struct {
		name      string
		err       error
		sinceAck  time.Duration
		want      error
		available bool
	}{
		{"acknowledged", nil, 0, nil, true},
		{"slow", context.DeadlineExceeded, time.Second, vote.ErrShed, true},
		{"hung", context.DeadlineExceeded, 10 * time.Second, vote.ErrQueueUnavailable, false},
		{"refused", errors.New("connection refused"), 0, vote.ErrQueueUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			prod := &topic{err: tc.err}
			q := New(cfg, prod, zap.NewNop(), func() time.Time { return clock }, prometheus.NewRegistry())
			clock = now.Add(tc.sinceAck)
			err := q.Enqueue(context.Background(), p, now, b)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if q.Available() != tc.available {
				t.Fatalf("available %v, want %v", q.Available(), tc.available)
			}
			if tc.err == nil {
				m, err := vote.Decode(prod.produced[0].Value)
				if err != nil || m.RequestID != b.RequestID || m.OptionsVersion != 1 || string(prod.produced[0].Key) != string(b.VoterID[:]) {
					t.Fatalf("produced %+v (%v)", m, err)
				}
			}
		})
	}
}

// poisonBacklog is a topic of n messages that do not decode: the drain
// dead-letters and commits each without touching Cassandra.
func poisonBacklog(n int) *topic {
	in := &topic{}
	for i := range n {
		in.msgs = append(in.msgs, kafka.Message{Topic: "tally.votes", Offset: int64(i), Key: []byte("k"), Value: []byte("{")})
	}
	return in
}

func (f *topic) commits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.committed)
}

func yieldingWorker(t *testing.T, in *topic, cfg WorkerConfig, burst func() bool) (stop func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	drain := vote.NewDrainer(vote.DrainConfig{PoisonAttempts: 1, MaxBackoff: time.Millisecond},
		vote.DrainDeps{Log: zap.NewNop(), Registry: reg,
			Votes: vote.NewService(vote.Config{}, vote.Deps{Fence: nopFence{}, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())})
	w := NewWorker(cfg, WorkerDeps{DLQ: &topic{}, Votes: drain, Log: zap.NewNop(), Registry: reg, Burst: burst,
		Yield: func() bool { return false }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Under pressure the drain yields fully: it asks again and again and
// takes nothing from the topic; once the pressure ends it drains all.
func TestWorkerYieldsFullyUnderPressureAndCatchesUpAfter(t *testing.T) {
	in := poisonBacklog(50)
	var pressure atomic.Bool
	var asked atomic.Int64
	pressure.Store(true)
	stop := yieldingWorker(t, in, WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 4,
		YieldPause: time.Millisecond, YieldMax: time.Hour}, func() bool {
		asked.Add(1)
		return pressure.Load()
	})
	defer stop()
	waitFor(t, "the worker to ask 50 times", func() bool { return asked.Load() >= 50 })
	if n := in.commits(); n != 0 {
		t.Fatalf("%d messages drained while the API was under pressure; want none", n)
	}
	pressure.Store(false)
	waitFor(t, "the backlog to drain", func() bool { return in.commits() == 50 })
}

// A pressure that never ends still lets one batch through per YieldMax,
// so the live tally moves and a freeze can complete.
func TestWorkerYieldIsBounded(t *testing.T) {
	in := poisonBacklog(20)
	stop := yieldingWorker(t, in, WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 4,
		YieldPause: time.Millisecond, YieldMax: 5 * time.Millisecond}, func() bool { return true })
	defer stop()
	waitFor(t, "the backlog to drain under endless pressure", func() bool { return in.commits() == 20 })
}

// Under pressure that never ends, a yield that ran its full YieldMax is
// followed by a window of draining that asks nothing: between two asks
// more than one batch goes through, so the drain keeps a share of the time.
func TestWorkerDrainsAFloorUnderEndlessPressure(t *testing.T) {
	in := poisonBacklog(400)
	var (
		mu     sync.Mutex
		seen   []int // commits at each ask
		biggst int
	)
	stop := yieldingWorker(t, in, WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 4,
		YieldPause: time.Millisecond, YieldMax: 50 * time.Millisecond}, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := in.commits()
		if len(seen) > 0 {
			biggst = max(biggst, n-seen[len(seen)-1])
		}
		seen = append(seen, n)
		return true
	})
	defer stop()
	waitFor(t, "the backlog to drain under endless pressure", func() bool { return in.commits() == 400 })
	mu.Lock()
	defer mu.Unlock()
	// The worker asks nothing once the topic is empty: what it drained
	// after its last ask counts too.
	biggst = max(biggst, 400-seen[len(seen)-1])
	if biggst <= 8 {
		t.Fatalf("at most %d messages drained between two asks; want more than one batch of 8 (the floor)", biggst)
	}
}

// Strain short of a burst (the API slow, nothing queueing) backs the drain
// off but never stops it: with the pressure signal up the whole time the
// backlog still drains.
func TestWorkerKeepsDrainingWhenTheAPIIsOnlySlow(t *testing.T) {
	in := poisonBacklog(40)
	reg := prometheus.NewRegistry()
	drain := vote.NewDrainer(vote.DrainConfig{PoisonAttempts: 1, MaxBackoff: time.Millisecond},
		vote.DrainDeps{Log: zap.NewNop(), Registry: reg,
			Votes: vote.NewService(vote.Config{}, vote.Deps{Fence: nopFence{}, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())})
	w := NewWorker(WorkerConfig{BatchSize: 8, BatchWait: time.Millisecond, Concurrency: 4, YieldPause: time.Millisecond,
		YieldMax: time.Hour}, WorkerDeps{DLQ: &topic{}, Votes: drain, Log: zap.NewNop(), Registry: reg,
		Yield: func() bool { return true }, Burst: func() bool { return false }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	waitFor(t, "the backlog to drain while the API is slow", func() bool { return in.commits() == 40 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The drain adapts before every batch: a burst stops it, strain backs it
// off, and a drain behind its lag target catches up whatever the strain.
func TestWorkerAdapt(t *testing.T) {
	now := time.Now()
	fresh := vote.Delivery{Message: vote.Message{AcceptedAt: now.Add(-100 * time.Millisecond)}}
	old := vote.Delivery{Message: vote.Message{AcceptedAt: now.Add(-2 * time.Second)}}
	oldReplay := vote.Delivery{Message: vote.Message{AcceptedAt: now.Add(-time.Hour)}, Replay: true}
	for _, tc := range []struct {
		name          string
		batch         []vote.Delivery
		strain, burst bool
		conc          int
		want          int
		waits         bool // pauses YieldPause (or yields)
		dedicated     bool // no API beside the worker
	}{
		{name: "calm climbs by one", batch: []vote.Delivery{fresh}, conc: 4, want: 5},
		{name: "calm at the top stays", batch: []vote.Delivery{fresh}, conc: 16, want: 16},
		{name: "strain halves and pauses", batch: []vote.Delivery{fresh}, strain: true, conc: 8, want: 4, waits: true},
		{name: "behind under strain doubles, no pause", batch: []vote.Delivery{fresh, old}, strain: true, conc: 4, want: 8},
		{name: "behind under strain doubles up to the concurrency", batch: []vote.Delivery{old}, strain: true, conc: 12, want: 16},
		{name: "behind under strain comes down to the concurrency", batch: []vote.Delivery{old}, strain: true, conc: 48, want: 16},
		{name: "behind and calm doubles past the concurrency", batch: []vote.Delivery{old}, conc: 16, want: 32},
		{name: "behind and calm stops at the catch-up cap", batch: []vote.Delivery{old}, conc: 48, want: 64},
		{name: "a replay's old acceptance is not lag", batch: []vote.Delivery{oldReplay}, strain: true, conc: 8, want: 4, waits: true},
		{name: "a burst stops the drain even behind", batch: []vote.Delivery{old}, strain: true, burst: true, conc: 8, want: 1, waits: true},
		{name: "a dedicated worker behind climbs by one", batch: []vote.Delivery{old}, dedicated: true, conc: 4, want: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(WorkerConfig{Concurrency: 16, CatchUpConcurrency: 64, LagTarget: 500 * time.Millisecond, YieldPause: time.Hour, YieldMax: time.Hour},
				WorkerDeps{DLQ: &topic{}, Log: zap.NewNop(), Registry: prometheus.NewRegistry(),
					Yield: func() bool { return tc.strain }, Burst: func() bool { return tc.burst }})
			if tc.dedicated {
				w.d.Yield, w.d.Burst = nil, nil
			}
			w.conc = tc.conc
			w.noteAge(tc.batch, now)
			// A pause would last an hour: the context ends it, and its
			// end tells that the worker paused.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			w.adapt(ctx)
			if w.conc != tc.want {
				t.Errorf("concurrency %d after adapt from %d; want %d", w.conc, tc.conc, tc.want)
			}
			if paused := ctx.Err() != nil; paused != tc.waits {
				t.Errorf("paused %v; want %v", paused, tc.waits)
			}
		})
	}
}
