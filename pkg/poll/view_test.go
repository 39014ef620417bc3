package poll

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// viewStore is a Store whose polls, latency and failures a test controls.
// Only Get is used by the view.
type viewStore struct {
	Store
	mu    sync.Mutex
	polls map[id.ID]Poll
	err   error
	// hold, when set, blocks every Get until it is closed (or ctx ends).
	hold  chan struct{}
	gets  atomic.Int64
	began chan id.ID
}

func newViewStore() *viewStore { return &viewStore{polls: map[id.ID]Poll{}} }

func (st *viewStore) Get(ctx context.Context, pollID id.ID) (*Poll, error) {
	st.gets.Add(1)
	st.mu.Lock()
	hold, began := st.hold, st.began
	st.mu.Unlock()
	if began != nil {
		began <- pollID
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, apperr.Unavailable("read poll", ctx.Err())
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	p, ok := st.polls[pollID]
	if !ok {
		return nil, ErrNotFound
	}
	return &p, nil
}

func (st *viewStore) set(p Poll) {
	st.mu.Lock()
	st.polls[p.ID] = p
	st.mu.Unlock()
}

func (st *viewStore) block() (release func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	h := make(chan struct{})
	st.hold = h
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			st.hold = nil
			st.mu.Unlock()
			close(h)
		})
	}
}

func (st *viewStore) fail(err error) {
	st.mu.Lock()
	st.err = err
	st.mu.Unlock()
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeChanges is Changes in memory: the test delivers notices and
// (re)connections by hand.
type fakeChanges struct {
	mu        sync.Mutex
	published []id.ID
	changed   func(id.ID)
	connected func()
	ready     chan struct{}
}

func (f *fakeChanges) Publish(_ context.Context, pollID id.ID) error {
	f.mu.Lock()
	f.published = append(f.published, pollID)
	f.mu.Unlock()
	return nil
}

func (f *fakeChanges) Watch(ctx context.Context, changed func(id.ID), connected func()) {
	f.mu.Lock()
	f.changed, f.connected = changed, connected
	f.mu.Unlock()
	close(f.ready)
	<-ctx.Done()
}

var viewT0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func testPoll() Poll {
	return Poll{ID: id.New(), CreatorID: id.New(), Title: "t", StartTime: viewT0.Add(-time.Hour),
		EndTime: viewT0.Add(time.Hour), Version: 1, Options: []Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"}}}
}

type viewRig struct {
	s     *Service
	store *viewStore
	clock *clock
	ch    *fakeChanges
	reg   *prometheus.Registry
}

func newViewRig(t *testing.T, cfg Config, realTime bool) *viewRig {
	t.Helper()
	r := &viewRig{store: newViewStore(), clock: &clock{t: viewT0}, ch: &fakeChanges{ready: make(chan struct{})},
		reg: prometheus.NewRegistry()}
	now := r.clock.now
	if realTime {
		now = time.Now
	}
	r.s = NewService(cfg, Deps{Store: r.store, Log: zap.NewNop(), Now: now, Metrics: r.reg, Changes: r.ch})
	t.Cleanup(r.s.Close)
	return r
}

// viewWithin calls View and fails the test if it does not answer within d.
func (r *viewRig) viewWithin(t *testing.T, pollID id.ID, d time.Duration) (*Poll, time.Time, error) {
	t.Helper()
	type answer struct {
		p    *Poll
		seen time.Time
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		p, seen, err := r.s.View(context.Background(), pollID)
		done <- answer{p, seen, err}
	}()
	select {
	case a := <-done:
		return a.p, a.seen, a.err
	case <-time.After(d):
		t.Fatalf("View waited more than %s", d)
		return nil, time.Time{}, nil
	}
}

func reads(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "tally_poll_view_reads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

var viewCfg = Config{CacheTTL: 500 * time.Millisecond, StaleIfError: 10 * time.Minute, NegativeTTL: time.Second,
	ViewIdle: 30 * time.Second, RefreshConcurrency: 4}

// A reader holding a view is answered from memory whatever the store does,
// up to StaleIfError past CacheTTL; beyond that it waits for a read.
func TestReadersDoNotWaitWhileAViewIsHeld(t *testing.T) {
	tests := []struct {
		name   string
		age    time.Duration
		wait   bool // the reader must wait for the store
		stored error
	}{
		{name: "fresh", age: 100 * time.Millisecond},
		{name: "due for refresh", age: 3 * time.Second},
		{name: "hung store, deep in stale-if-error", age: 9 * time.Minute},
		{name: "failing store, deep in stale-if-error", age: 9 * time.Minute,
			stored: apperr.Unavailable("read poll", errors.New("down"))},
		{name: "past stale-if-error", age: 11 * time.Minute, wait: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newViewRig(t, viewCfg, false)
			p := testPoll()
			r.store.set(p)
			if _, _, err := r.viewWithin(t, p.ID, time.Second); err != nil {
				t.Fatal(err)
			}
			r.store.fail(tt.stored)
			release := r.store.block()
			defer release()
			r.clock.advance(tt.age)
			before := r.store.gets.Load()
			if !tt.wait {
				got, seen, err := r.viewWithin(t, p.ID, 50*time.Millisecond)
				if err != nil || got.ID != p.ID || !seen.Equal(viewT0) {
					t.Fatalf("view: %v %v %v", got, seen, err)
				}
				if n := r.store.gets.Load() - before; n != 0 {
					t.Fatalf("%d reads on the reader's path", n)
				}
				return
			}
			done := make(chan error, 1)
			go func() { _, _, err := r.s.View(context.Background(), p.ID); done <- err }()
			select {
			case err := <-done:
				t.Fatalf("a view past stale-if-error was served: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The background refresh brings changes into the view; the reader never
// triggers it.
func TestBackgroundRefreshUpdatesTheView(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	closed := p
	closed.ClosedAt, closed.Version = viewT0.Add(time.Second), 2
	r.store.set(closed)

	r.clock.advance(100 * time.Millisecond)
	r.s.refreshRound(context.Background(), false) // not due yet
	if got, _, _ := r.s.View(context.Background(), p.ID); !got.ClosedAt.IsZero() {
		t.Fatal("a view younger than CacheTTL was re-read")
	}
	r.clock.advance(viewCfg.CacheTTL)
	r.s.refreshRound(context.Background(), false)
	got, seen, _ := r.s.View(context.Background(), p.ID)
	if got.ClosedAt.IsZero() || got.Version != 2 {
		t.Fatalf("refreshed view: %+v", got)
	}
	if want := viewT0.Add(100*time.Millisecond + viewCfg.CacheTTL); !seen.Equal(want) {
		t.Fatalf("seenAt %s, want the refresh's start %s", seen, want)
	}
	if n := r.store.gets.Load(); n != 2 {
		t.Fatalf("%d store reads, want 2 (first reader, one refresh)", n)
	}
}

// An older read never replaces a newer view (a refresh that raced an
// owner's change written through this process).
func TestViewKeepsTheNewerPoll(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	newer := p
	newer.Version, newer.Title = 3, "new"
	r.s.changedHere(context.Background(), &newer)
	r.clock.advance(time.Second)
	r.s.refreshRound(context.Background(), false) // the store still has version 1
	if got, _, _ := r.s.View(context.Background(), p.ID); got.Version != 3 {
		t.Fatalf("view went back to version %d", got.Version)
	}
	if len(r.ch.published) != 1 || r.ch.published[0] != p.ID {
		t.Fatalf("published %v", r.ch.published)
	}
}

// Unknown ids are remembered for NegativeTTL, and a change notice (a
// creation publishes one) ends that at once.
func TestNegativeEntries(t *testing.T) {
	tests := []struct {
		name      string
		after     func(r *viewRig, pollID id.ID)
		wantReads int64
	}{
		{name: "within the TTL", after: func(r *viewRig, _ id.ID) { r.clock.advance(900 * time.Millisecond) }, wantReads: 1},
		{name: "expired", after: func(r *viewRig, _ id.ID) { r.clock.advance(time.Second) }, wantReads: 2},
		{name: "dropped by a notice", after: func(r *viewRig, pollID id.ID) { r.s.noticed(pollID) }, wantReads: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newViewRig(t, viewCfg, false)
			unknown := id.New()
			for range 100 {
				if _, _, err := r.s.View(context.Background(), unknown); !errors.Is(err, ErrNotFound) {
					t.Fatalf("unknown id: %v", err)
				}
			}
			if n := r.store.gets.Load(); n != 1 {
				t.Fatalf("%d reads for 100 requests of one unknown id", n)
			}
			if h := reads(t, r.reg, "negative_hit"); h != 99 {
				t.Fatalf("%v negative hits", h)
			}
			tt.after(r, unknown)
			_, _, _ = r.s.View(context.Background(), unknown)
			if n := r.store.gets.Load(); n != tt.wantReads {
				t.Fatalf("%d reads, want %d", n, tt.wantReads)
			}
		})
	}
}

// Concurrent first readers of a poll share one read.
func TestFirstReadersShareOneRead(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	release := r.store.block()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	release()
	wg.Wait()
	if n := r.store.gets.Load(); n != 1 {
		t.Fatalf("%d reads for 50 concurrent first readers", n)
	}
}

// A close that reaches a process by notice is served within one refresh
// period; a lost notice is made good by the refresh loop within CacheTTL
// and one read; a (re)subscription re-reads every view at once. Real time,
// the loop running.
func TestChangesReachTheView(t *testing.T) {
	cfg := viewCfg
	cfg.CacheTTL = 200 * time.Millisecond
	tests := []struct {
		name    string
		deliver func(r *viewRig, pollID id.ID)
		within  time.Duration
	}{
		{name: "notice", deliver: func(r *viewRig, pollID id.ID) { r.ch.changed(pollID) }, within: cfg.CacheTTL / 2},
		{name: "lost notice", deliver: func(*viewRig, id.ID) {}, within: cfg.CacheTTL + 50*time.Millisecond},
		{name: "resubscribed", deliver: func(r *viewRig, _ id.ID) { r.ch.connected() }, within: cfg.CacheTTL / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newViewRig(t, cfg, true)
			p := testPoll()
			r.store.set(p)
			if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
				t.Fatal(err)
			}
			<-r.ch.ready
			closed := p
			closed.ClosedAt, closed.Version = time.Now(), 2
			r.store.set(closed)
			start := time.Now()
			tt.deliver(r, p.ID)
			for {
				got, _, err := r.viewWithin(t, p.ID, 20*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				if !got.ClosedAt.IsZero() {
					t.Logf("close served after %s", time.Since(start).Round(time.Millisecond))
					break
				}
				if time.Since(start) > tt.within {
					t.Fatalf("close not served within %s", tt.within)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
}

// A notice that arrives while a refresh is reading is followed by another
// read: the one in flight may predate the change.
func TestNoticeDuringARefreshReadsAgain(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	r.store.mu.Lock()
	began := make(chan id.ID, 4)
	r.store.began = began
	r.store.mu.Unlock()
	release := r.store.block()
	r.clock.advance(time.Second)
	done := make(chan struct{})
	go func() { r.s.refreshRound(context.Background(), false); close(done) }()
	<-began // the refresh is reading version 1
	closed := p
	closed.ClosedAt, closed.Version = viewT0, 2
	r.store.set(closed)
	r.s.views.byID[p.ID].gen.Add(1) // the notice, without its worker
	release()
	<-began // read again
	<-done
	if got, _, _ := r.s.View(context.Background(), p.ID); got.Version != 2 {
		t.Fatalf("view at version %d after the notice", got.Version)
	}
}

// Views no reader asked for in ViewIdle are dropped and no longer read.
func TestIdleViewsAreEvicted(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	used, idle := testPoll(), testPoll()
	r.store.set(used)
	r.store.set(idle)
	for _, p := range []Poll{used, idle} {
		if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		r.clock.advance(10 * time.Second)
		_, _, _ = r.s.View(context.Background(), used.ID)
		r.s.refreshRound(context.Background(), false)
	}
	if _, ok := r.s.views.byID[idle.ID]; ok {
		t.Fatal("an idle view is still held")
	}
	if _, ok := r.s.views.byID[used.ID]; !ok {
		t.Fatal("a view in use was dropped")
	}
	if age := r.s.oldestAge(); age != 0 {
		t.Fatalf("oldest view age %v s right after a round", age)
	}
	if v := testutil.ToFloat64(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, r.s.held)); v != 1 {
		t.Fatalf("%v views held", v)
	}
}

// Get serves tools that read every poll: it refreshes a held view, never
// adds one.
func TestGetDoesNotAddViews(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	if _, err := r.s.Get(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	if r.s.held() != 0 {
		t.Fatal("Get added a view")
	}
}

// A failed background re-read is not retried every tick: a Cassandra that
// refuses at once would be asked for every view four times per CacheTTL.
func TestFailedRefreshBacksOff(t *testing.T) {
	r := newViewRig(t, viewCfg, false)
	p := testPoll()
	r.store.set(p)
	if _, _, err := r.s.View(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	r.store.fail(apperr.Unavailable("read poll", errors.New("down")))
	r.clock.advance(viewCfg.CacheTTL)
	steps := []struct {
		advance   time.Duration
		wantReads int64
	}{
		{0, 2}, // due: read, fails
		{viewCfg.CacheTTL / 4, 2},
		{viewCfg.CacheTTL / 2, 2},
		{viewCfg.CacheTTL / 4, 3}, // CacheTTL after the failure
	}
	for i, st := range steps {
		r.clock.advance(st.advance)
		r.s.refreshRound(context.Background(), false)
		if n := r.store.gets.Load(); n != st.wantReads {
			t.Fatalf("step %d: %d reads, want %d", i, n, st.wantReads)
		}
	}
	if got := testutil.ToFloat64(r.s.vm.refreshErrors); got != 2 {
		t.Fatalf("%v refresh errors counted", got)
	}
	// Readers are still served the view.
	if _, _, err := r.viewWithin(t, p.ID, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
