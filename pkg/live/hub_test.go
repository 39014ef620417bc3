package live

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// steps is a Source and Polls whose total moves only when told to; reads
// can be held to test what arrives meanwhile.
type steps struct {
	total  atomic.Int64
	reads  atomic.Int64
	frozen atomic.Bool
	hold   chan struct{} // when non-nil, each results read waits for a value

	mu sync.Mutex
	p  *poll.Poll
	// cached, when set, is served to reads as of its AsOf or earlier, as
	// the results cache does.
	cached *tally.Results
}

func (s *steps) LiveSince(_ context.Context, p *poll.Poll, since time.Time) (*tally.Results, error) {
	s.reads.Add(1)
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	cached := s.cached
	s.mu.Unlock()
	if cached != nil && !cached.AsOf.Before(since) {
		return cached, nil
	}
	c := tally.NewCounts()
	c.Ballots = s.total.Load()
	return tally.BuildResults(p, c, tally.Live, time.Now(), time.Now()), nil
}

func (s *steps) FrozenResults(_ context.Context, p *poll.Poll) (*tally.Results, bool, error) {
	if !s.frozen.Load() {
		return nil, false, nil
	}
	s.reads.Add(1)
	c := tally.NewCounts()
	c.Ballots = s.total.Load()
	return tally.BuildResults(p, c, tally.Final, time.Now(), time.Now()), true, nil
}

func (s *steps) Cached(context.Context, id.ID) (*poll.Poll, error) { return s.poll(), nil }
func (s *steps) Get(context.Context, id.ID) (*poll.Poll, error)    { return s.poll(), nil }

func (s *steps) poll() *poll.Poll {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

func (s *steps) setPoll(p *poll.Poll) {
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
}

func newSteps() *steps {
	return &steps{p: &poll.Poll{ID: id.New(), StartTime: time.Now().Add(-time.Hour), EndTime: time.Now().Add(time.Hour)}}
}

type frameDoc struct {
	Type   string      `json:"type"`
	Total  int64       `json:"total_votes"`
	Tally  tally.Mode  `json:"tally"`
	Status poll.Status `json:"status"`
}

func next(t *testing.T, s *Subscription) frameDoc {
	t.Helper()
	select {
	case f, ok := <-s.Frames():
		if !ok {
			t.Fatalf("subscription ended: %s", s.Reason())
		}
		var fr frameDoc
		if err := json.Unmarshal(f, &fr); err != nil || fr.Type != "results" {
			t.Fatalf("frame %s: %v", f, err)
		}
		return fr
	case <-time.After(2 * time.Second):
		t.Fatal("no frame")
	}
	return frameDoc{}
}

func quiet(t *testing.T, s *Subscription, d time.Duration) {
	t.Helper()
	select {
	case f := <-s.Frames():
		t.Fatalf("unexpected frame %s", f)
	case <-time.After(d):
	}
}

func newHub(src *steps, backstop time.Duration) *Hub {
	return NewHub(Config{Backstop: backstop, Recheck: time.Hour}, src, src, zap.NewNop(), prometheus.NewRegistry())
}

// One notice is one read, whatever the number of subscribers, and every
// subscriber gets the frame; subscribers get the current frame at once.
func TestHubReadsOncePerNoticeAndFansOut(t *testing.T) {
	src := newSteps()
	h := newHub(src, time.Hour)
	p := src.poll()
	subs := make([]*Subscription, 0, 50)
	for i := range 50 {
		tr := WebSocket
		if i%2 == 1 {
			tr = SSE
		}
		s := h.Subscribe(p, tr, nil)
		subs = append(subs, s)
		if next(t, s).Total != 0 {
			t.Fatal("first frame")
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d reads for 50 subscribers, want 1", n)
	}
	src.total.Store(7)
	h.Counted(p.ID, time.Now())
	for _, s := range subs {
		if got := next(t, s).Total; got != 7 {
			t.Fatalf("total %d after the notice", got)
		}
	}
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("%d reads after one notice, want 2", n)
	}
	// A notice that changed nothing pushes nothing.
	h.Counted(p.ID, time.Now())
	quiet(t, subs[0], 50*time.Millisecond)
	if g := testutil.ToFloat64(h.m.subscribers.WithLabelValues(SSE)); g != 25 {
		t.Fatalf("sse subscribers %v", g)
	}
	if n := testutil.ToFloat64(h.m.rereads.WithLabelValues(causeNotice)); n != 2 {
		t.Fatalf("notice re-reads %v", n)
	}
	for _, s := range subs {
		s.Close()
		s.Close() // idempotent
	}
	if g := testutil.ToFloat64(h.m.subscribers.WithLabelValues(WebSocket)); g != 0 {
		t.Fatalf("ws subscribers %v after closing", g)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rooms) != 0 {
		t.Fatal("the room outlived its last subscriber")
	}
}

// Notices arriving during a read are folded into one more read.
func TestHubFoldsNoticesDuringARead(t *testing.T) {
	src := newSteps()
	src.hold = make(chan struct{})
	h := newHub(src, time.Hour)
	s := h.Subscribe(src.poll(), WebSocket, nil)
	defer s.Close()
	src.hold <- struct{}{} // the first read
	next(t, s)
	src.total.Store(1)
	h.Counted(src.poll().ID, time.Now())
	for src.reads.Load() < 2 { // the second read has begun and is held
		time.Sleep(time.Millisecond)
	}
	for range 20 { // while the second read is held
		h.Counted(src.poll().ID, time.Now())
	}
	src.hold <- struct{}{}
	src.hold <- struct{}{} // the one read the 20 notices folded into
	if next(t, s).Total != 1 {
		t.Fatal("total")
	}
	select {
	case src.hold <- struct{}{}:
		t.Fatal("a third read after the notices")
	case <-time.After(100 * time.Millisecond):
	}
	if n := src.reads.Load(); n != 3 {
		t.Fatalf("%d reads, want 3", n)
	}
}

// Without any notice, the backstop picks up a change.
func TestHubBackstopRepairsALostNotice(t *testing.T) {
	src := newSteps()
	h := newHub(src, 50*time.Millisecond)
	s := h.Subscribe(src.poll(), SSE, nil)
	defer s.Close()
	next(t, s)
	src.total.Store(4)
	if next(t, s).Total != 4 {
		t.Fatal("the backstop did not deliver the change")
	}
	if n := testutil.ToFloat64(h.m.changes.WithLabelValues(causeBackstop)); n != 1 {
		t.Fatalf("backstop changes %v, want 1", n)
	}
}

// A backstop read never sends the bars back: a cached snapshot older than
// the room's last frame (a slower computation wrote it over a newer one)
// is passed over for a fresh read.
func TestHubNeverSendsOlderResults(t *testing.T) {
	src := newSteps()
	src.total.Store(4)
	h := newHub(src, 20*time.Millisecond)
	s := h.Subscribe(src.poll(), SSE, nil)
	defer s.Close()
	if got := next(t, s).Total; got != 4 {
		t.Fatalf("first frame total %d, want 4", got)
	}
	c := tally.NewCounts()
	c.Ballots = 3
	before := time.Now().Add(-time.Minute)
	stale := tally.BuildResults(src.poll(), c, tally.Live, before, before)
	src.mu.Lock()
	src.cached = stale
	src.mu.Unlock()
	reads := src.reads.Load()
	quiet(t, s, 200*time.Millisecond)
	if src.reads.Load() == reads {
		t.Fatal("no backstop read happened")
	}
	// A newer snapshot in the cache is taken as it is.
	c.Ballots = 5
	newer := tally.BuildResults(src.poll(), c, tally.Live, time.Now().Add(time.Minute), time.Now())
	src.mu.Lock()
	src.cached = newer
	src.mu.Unlock()
	if got := next(t, s).Total; got != 5 {
		t.Fatalf("frame total %d after a newer snapshot, want 5", got)
	}
}

// A subscriber that stops taking frames is dropped after MaxMissed changes,
// and neither it nor the drop delays the subscriber that keeps up.
func TestHubDropsASubscriberThatStopsReading(t *testing.T) {
	src := newSteps()
	h := newHub(src, time.Hour)
	p := src.poll()
	stuck := h.Subscribe(p, WebSocket, nil)
	defer stuck.Close()
	live := h.Subscribe(p, WebSocket, nil)
	defer live.Close()
	next(t, live)
	for i := int64(1); i <= MaxMissed+1; i++ {
		src.total.Store(i)
		h.Counted(p.ID, time.Now())
		for next(t, live).Total != i {
		}
	}
	for range 2 {
		select {
		case _, ok := <-stuck.Frames():
			if !ok {
				if stuck.Reason() != EndSlow || testutil.ToFloat64(h.m.dropped.WithLabelValues(EndSlow)) != 1 {
					t.Fatalf("reason %q", stuck.Reason())
				}
				return
			}
		case <-time.After(time.Second):
			t.Fatal("the stuck subscriber was not dropped")
		}
	}
	t.Fatal("the stuck subscriber's channel is still open")
}

// A poll change re-asks each subscriber's permission; a refusal ends that
// subscription only.
func TestHubEndsSubscriptionsThatMayNoLongerSee(t *testing.T) {
	src := newSteps()
	h := newHub(src, time.Hour)
	p := src.poll()
	var hide atomic.Bool
	asked := make(chan *poll.Poll, 10)
	owner := h.Subscribe(p, WebSocket, func(context.Context, *poll.Poll) bool { return true })
	defer owner.Close()
	voter := h.Subscribe(p, SSE, func(_ context.Context, q *poll.Poll) bool { asked <- q; return !hide.Load() })
	defer voter.Close()
	next(t, owner)
	next(t, voter)
	hide.Store(true)
	changed := *p
	changed.Version++
	src.setPoll(&changed)
	h.PollChanged(p.ID)
	if q := <-asked; q.Version != changed.Version {
		t.Fatalf("asked about version %d, want the changed poll", q.Version)
	}
	select {
	case _, ok := <-voter.Frames():
		if ok {
			t.Fatal("a frame instead of the end")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not ended")
	}
	if voter.Reason() != EndHidden {
		t.Fatalf("reason %q", voter.Reason())
	}
	quiet(t, owner, 50*time.Millisecond) // same results: nothing to push
	h.mu.Lock()
	n := len(h.rooms[p.ID].subs)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d subscribers left", n)
	}
}

// A closed poll's frozen tally is pushed as a final frame; after it the
// backstop stops reading.
func TestHubSendsTheFinalFrame(t *testing.T) {
	src := newSteps()
	h := newHub(src, 30*time.Millisecond)
	s := h.Subscribe(src.poll(), WebSocket, nil)
	defer s.Close()
	next(t, s)
	closed := *src.poll()
	closed.EndTime = time.Now().Add(-time.Second)
	closed.Version++
	src.setPoll(&closed)
	src.total.Store(2)
	h.PollChanged(closed.ID)
	if f := next(t, s); f.Status != poll.Closed || f.Tally != tally.Live {
		t.Fatalf("frame after the close %+v", f)
	}
	src.frozen.Store(true)
	f := next(t, s) // found by the backstop
	if f.Tally != tally.Final || f.Total != 2 {
		t.Fatalf("final frame %+v", f)
	}
	reads := src.reads.Load()
	time.Sleep(150 * time.Millisecond)
	if src.reads.Load() != reads {
		t.Fatal("the hub kept reading a frozen tally")
	}
	// A late subscriber gets the final frame at once.
	late := h.Subscribe(&closed, SSE, nil)
	defer late.Close()
	if next(t, late).Tally != tally.Final {
		t.Fatal("late subscriber")
	}
}

func TestHubCloseEndsEverySubscription(t *testing.T) {
	src := newSteps()
	h := newHub(src, time.Hour)
	s := h.Subscribe(src.poll(), SSE, nil)
	next(t, s)
	h.Close()
	if _, ok := <-s.Frames(); ok || s.Reason() != EndShutdown {
		t.Fatalf("after Close: open %v reason %q", ok, s.Reason())
	}
	s.Close()
	after := h.Subscribe(src.poll(), SSE, nil)
	if _, ok := <-after.Frames(); ok || after.Reason() != EndShutdown {
		t.Fatal("a subscription after Close")
	}
}

// The status turns closed at end_time with no notice: the room wakes then,
// also after the owner moved end_time.
func TestHubWakesAtTheEndTime(t *testing.T) {
	src := newSteps()
	h := newHub(src, time.Hour)
	s := h.Subscribe(src.poll(), WebSocket, nil)
	defer s.Close()
	next(t, s)
	moved := *src.poll()
	moved.EndTime = time.Now().Add(150 * time.Millisecond)
	moved.Version++
	src.setPoll(&moved)
	h.PollChanged(moved.ID) // same results: no frame, but the room follows end_time
	start := time.Now()
	if f := next(t, s); f.Status != poll.Closed {
		t.Fatalf("frame at the end time %+v", f)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("closed frame %v after a 150 ms end time", d)
	}
}
