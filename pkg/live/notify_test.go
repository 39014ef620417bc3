package live

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// fakeClock runs timers when the test advances it, in the test's
// goroutine.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	c.timers = append(c.timers, fakeTimer{at: c.t.Add(d), f: f})
	c.mu.Unlock()
}

// advanceTo moves the clock to t, firing due timers in order, each at its
// own time.
func (c *fakeClock) advanceTo(t time.Time) {
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		if len(c.timers) == 0 || c.timers[0].at.After(t) {
			c.t = t
			c.mu.Unlock()
			return
		}
		next := c.timers[0]
		c.timers = c.timers[1:]
		c.t = next.at
		c.mu.Unlock()
		next.f()
	}
}

func TestNotifierCoalesces(t *testing.T) {
	const ms = time.Millisecond
	every := 250 * ms
	for _, tc := range []struct {
		name    string
		changes []time.Duration // offsets of Changed calls
		want    []time.Duration // offsets of publishes
	}{
		{"one change is published at once", []time.Duration{0}, []time.Duration{0}},
		{"a burst shares one trailing publish", []time.Duration{0, 10 * ms, 20 * ms, 249 * ms}, []time.Duration{0, 250 * ms}},
		{"changes after a quiet window publish at once", []time.Duration{0, 600 * ms}, []time.Duration{0, 600 * ms}},
		{"a change right after the window end", []time.Duration{0, 250 * ms}, []time.Duration{0, 250 * ms}},
		{"a steady stream: one per window, the last change trailing",
			[]time.Duration{0, 100 * ms, 200 * ms, 300 * ms, 400 * ms, 500 * ms, 600 * ms},
			[]time.Duration{0, 250 * ms, 500 * ms, 750 * ms}},
		{"a change in a trailing window", []time.Duration{0, 100 * ms, 300 * ms}, []time.Duration{0, 250 * ms, 500 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			clk := &fakeClock{t: start}
			var mu sync.Mutex
			var got []time.Duration
			done := make(chan struct{}, 100)
			pub := func(_ context.Context, _ id.ID, at time.Time) error {
				mu.Lock()
				got = append(got, at.Sub(start))
				mu.Unlock()
				done <- struct{}{}
				return nil
			}
			n := NewNotifier(pub, every, clk, zap.NewNop(), prometheus.NewRegistry())
			p := id.New()
			for _, c := range tc.changes {
				clk.advanceTo(start.Add(c))
				n.Changed(p)
			}
			clk.advanceTo(start.Add(10 * time.Second))
			for range tc.want {
				select {
				case <-done:
				case <-time.After(2 * time.Second):
					t.Fatalf("published %v, want %v", got, tc.want)
				}
			}
			select {
			case <-done:
				t.Fatalf("an extra publish: %v, want %v", got, tc.want)
			case <-time.After(20 * time.Millisecond):
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("published at %v, want %v", got, tc.want)
				}
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			if len(n.open) != 0 {
				t.Fatalf("the notifier still holds %d polls after a quiet window", len(n.open))
			}
		})
	}
}

// Polls are coalesced each on its own.
func TestNotifierKeepsPollsApart(t *testing.T) {
	start := time.Now()
	clk := &fakeClock{t: start}
	seen := make(chan id.ID, 10)
	n := NewNotifier(func(_ context.Context, p id.ID, _ time.Time) error { seen <- p; return nil },
		time.Second, clk, zap.NewNop(), prometheus.NewRegistry())
	a, b := id.New(), id.New()
	n.Changed(a)
	n.Changed(b)
	n.Changed(a)
	got := map[id.ID]int{}
	for range 2 {
		got[<-seen]++
	}
	clk.advanceTo(start.Add(time.Second))
	got[<-seen]++
	if got[a] != 2 || got[b] != 1 {
		t.Fatalf("publishes %v", got)
	}
}
