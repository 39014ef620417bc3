package audit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// memChain is a ChainStore in memory whose Insert is conditional on seq,
// like the table's IF NOT EXISTS. before, when set, runs before each
// insert (to let a rival append land first).
type memChain struct {
	mu      sync.Mutex
	entries map[id.ID][]Entry
	before  func()
	fail    error
}

func (m *memChain) Head(_ context.Context, pollID id.ID) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.entries[pollID]
	if len(c) == 0 {
		return Entry{}, false, nil
	}
	return c[len(c)-1], true, nil
}

func (m *memChain) Insert(_ context.Context, e Entry) (bool, error) {
	if m.before != nil {
		m.before()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	if m.entries == nil {
		m.entries = map[id.ID][]Entry{}
	}
	if int64(len(m.entries[e.PollID])) >= e.Seq {
		return false, nil
	}
	m.entries[e.PollID] = append(m.entries[e.PollID], e)
	return true, nil
}

func (m *memChain) Entries(_ context.Context, pollID id.ID, after int64, limit int) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for _, e := range m.entries[pollID] {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func newTestLog(t *testing.T, chain ChainStore) (*Log, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(nil, chain, func() time.Time { return testAt }, zap.NewNop(), reg), reg
}

// Concurrent appends each land once, in one unforked chain.
func TestAppendConcurrent(t *testing.T) {
	store := &memChain{}
	l, reg := newTestLog(t, store)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := l.Append(context.Background(), testPoll, testActor, PollUpdated, map[string]any{"x": 1}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	chain, err := l.Chain(context.Background(), testPoll)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 20 {
		t.Fatalf("%d entries, want 20", len(chain))
	}
	if _, err := Verify(testPoll, chain, nil); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(l.chain.appends.WithLabelValues(PollUpdated)); n != 20 {
		t.Fatalf("appends metric %v", n)
	}
	_ = reg
}

// A lost race re-reads the head and links after the winner; losing every
// race ends in UNAVAILABLE, counted.
func TestAppendConflicts(t *testing.T) {
	store := &memChain{}
	l, _ := newTestLog(t, store)
	rival := func() {
		store.mu.Lock()
		c := store.entries[testPoll]
		e := Link(HeadOf(c), testPoll, testAt, PollUpdated, id.ID{}, []byte("{}"))
		if store.entries == nil {
			store.entries = map[id.ID][]Entry{}
		}
		store.entries[testPoll] = append(c, e)
		store.mu.Unlock()
	}
	once := sync.Once{}
	store.before = func() { once.Do(rival) }
	e, err := l.Append(context.Background(), testPoll, testActor, PollClosed, nil)
	if err != nil || e.Seq != 2 {
		t.Fatalf("append after one lost race: seq %d, %v", e.Seq, err)
	}
	if n := testutil.ToFloat64(l.chain.conflicts); n != 1 {
		t.Fatalf("conflicts %v, want 1", n)
	}

	store.before = rival
	_, err = l.Append(context.Background(), testPoll, testActor, PollClosed, nil)
	if !errors.Is(err, apperr.ErrUnavailable) {
		t.Fatalf("always losing: %v, want UNAVAILABLE", err)
	}
	if n := testutil.ToFloat64(l.chain.failures.WithLabelValues(PollClosed)); n != 1 {
		t.Fatalf("failures %v, want 1", n)
	}
	chain, _ := l.Chain(context.Background(), testPoll)
	if _, err := Verify(testPoll, chain, nil); err != nil {
		t.Fatal(err)
	}
}

// A store error is the action's answer.
func TestAppendStoreDown(t *testing.T) {
	down := apperr.Unavailable("append audit entry", errors.New("no hosts available"))
	l, _ := newTestLog(t, &memChain{fail: down})
	if _, err := l.Append(context.Background(), testPoll, testActor, PollCreated, nil); !errors.Is(err, down) {
		t.Fatalf("append: %v", err)
	}
}

// A chain's first entry is written once: a replayed create adds nothing.
func TestAppendFirst(t *testing.T) {
	store := &memChain{}
	l, _ := newTestLog(t, store)
	ctx := context.Background()
	e, written, err := l.AppendFirst(ctx, testPoll, testActor, PollCreated, map[string]any{"title": "t"})
	if err != nil || !written || e.Seq != 1 || string(e.Detail) != `{"title":"t"}` {
		t.Fatalf("first: %+v %v %v", e, written, err)
	}
	if _, written, err := l.AppendFirst(ctx, testPoll, testActor, PollCreated, nil); err != nil || written {
		t.Fatalf("replayed: written %v, %v", written, err)
	}
	if _, err := l.Append(ctx, testPoll, testActor, PollClosed, nil); err != nil {
		t.Fatal(err)
	}
	chain, _ := l.Chain(ctx, testPoll)
	if len(chain) != 2 || chain[0].Kind != PollCreated || string(chain[1].Detail) != "{}" {
		t.Fatalf("chain %+v", chain)
	}
	if _, err := Verify(testPoll, chain, nil); err != nil {
		t.Fatal(err)
	}
}
