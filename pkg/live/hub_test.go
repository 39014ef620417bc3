package live

import (
	"context"
	"encoding/json"
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

// steps is a Source whose total moves only when told to.
type steps struct {
	total atomic.Int64
	reads atomic.Int64
}

func (s *steps) Results(_ context.Context, p *poll.Poll, mode tally.Mode) (*tally.Results, error) {
	s.reads.Add(1)
	c := tally.NewCounts()
	c.Ballots = s.total.Load()
	return tally.BuildResults(p, c, mode, time.Now(), time.Now()), nil
}

func TestHubPushesOnlyChanges(t *testing.T) {
	src := &steps{}
	p := &poll.Poll{ID: id.New(), StartTime: time.Now().Add(-time.Hour), EndTime: time.Now().Add(time.Hour)}
	reg := prometheus.NewRegistry()
	h := NewHub(src, func(context.Context, id.ID) (*poll.Poll, error) { return p, nil }, 10*time.Millisecond, zap.NewNop(), reg)

	a, stopA := h.Subscribe(p)
	b, stopB := h.Subscribe(p)
	total := func(ch <-chan []byte) int64 {
		t.Helper()
		select {
		case f := <-ch:
			var fr struct {
				Type  string `json:"type"`
				Total int64  `json:"total_votes"`
			}
			if err := json.Unmarshal(f, &fr); err != nil || fr.Type != "results" {
				t.Fatalf("frame %s: %v", f, err)
			}
			return fr.Total
		case <-time.After(2 * time.Second):
			t.Fatal("no frame")
		}
		return 0
	}
	if total(a) != 0 {
		t.Fatal("first frame")
	}
	// b may have joined after the first read was broadcast; the hub pushes
	// changes only (the socket handler sends its own first frame). The
	// broadcast to a and b happens in one pass under h.mu: once the lock is
	// free again, b either holds the first frame or never gets it.
	h.mu.Lock()
	h.mu.Unlock() //nolint:staticcheck // waits for the broadcast pass to end
	select {
	case <-b:
	default:
	}
	// Unchanged results push nothing.
	time.Sleep(50 * time.Millisecond)
	select {
	case f := <-a:
		t.Fatalf("pushed an unchanged frame: %s", f)
	default:
	}
	src.total.Store(3)
	if total(a) != 3 || total(b) != 3 {
		t.Fatal("change not pushed to every subscriber")
	}
	if n := testutil.ToFloat64(h.gauge); n != 2 {
		t.Fatalf("gauge %v", n)
	}
	stopA()
	stopB()
	stopB() // idempotent
	reads := src.reads.Load()
	time.Sleep(50 * time.Millisecond)
	if src.reads.Load() > reads+1 || testutil.ToFloat64(h.gauge) != 0 {
		t.Fatal("the poll's refresher kept running after the last subscriber left")
	}
}

// A subscriber that stops taking frames is dropped after MaxMissed changes,
// and neither it nor the drop delays the subscriber that keeps up.
func TestHubDropsASubscriberThatStopsReading(t *testing.T) {
	src := &steps{}
	p := &poll.Poll{ID: id.New(), StartTime: time.Now().Add(-time.Hour), EndTime: time.Now().Add(time.Hour)}
	h := NewHub(src, func(context.Context, id.ID) (*poll.Poll, error) { return p, nil }, 5*time.Millisecond,
		zap.NewNop(), prometheus.NewRegistry())
	stuck, stopStuck := h.Subscribe(p)
	defer stopStuck()
	live, stopLive := h.Subscribe(p)
	defer stopLive()

	next := func(want int64) {
		t.Helper()
		src.total.Store(want)
		deadline := time.After(2 * time.Second)
		for {
			select {
			case f := <-live:
				var fr struct {
					Total int64 `json:"total_votes"`
				}
				_ = json.Unmarshal(f, &fr)
				if fr.Total == want {
					return
				}
			case <-deadline:
				t.Fatalf("frame with total %d not delivered", want)
			}
		}
	}
	// The first frame (total 0) may go out before the second subscriber
	// joins, so the test counts changes from 1.
	for i := int64(1); i <= MaxMissed+1; i++ {
		next(i)
	}
	// The stuck channel holds at most one frame, then reports closed.
	for range 2 {
		select {
		case _, ok := <-stuck:
			if !ok {
				if d := testutil.ToFloat64(h.dropped); d != 1 {
					t.Fatalf("dropped counter %v", d)
				}
				if g := testutil.ToFloat64(h.gauge); g != 1 {
					t.Fatalf("gauge %v after the drop, want 1", g)
				}
				return
			}
		case <-time.After(time.Second):
			t.Fatal("the stuck subscriber was not dropped")
		}
	}
	t.Fatal("the stuck subscriber's channel is still open")
}
