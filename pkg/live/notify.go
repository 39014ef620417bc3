package live

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// Clock is the time a Notifier runs on; tests drive a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func())
}

type realClock struct{}

func (realClock) Now() time.Time                      { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// Publish sends one "the poll's counts changed" notice to every process;
// at is when the counts had changed by (a reader of results as of at or
// later sees the change).
type Publish func(ctx context.Context, pollID id.ID, at time.Time) error

// Notifier announces counter changes, coalesced per poll: the first change
// after a quiet spell is published at once, and the changes that follow
// within Every share one trailing publish at the end of the window, which
// opens the next window. However hot the poll, each poll is announced at
// most once per Every, and its last change is never left unannounced.
type Notifier struct {
	publish Publish
	every   time.Duration
	clock   Clock
	log     *zap.Logger
	events  *prometheus.CounterVec

	mu sync.Mutex
	// open holds the polls inside a window; true when a change arrived
	// since the window's publish.
	open map[id.ID]bool
}

// noticePublishTimeout bounds one publish: past it the backstop re-reads
// repair what the lost notice did not announce.
const noticePublishTimeout = 250 * time.Millisecond

// NewNotifier builds a notifier publishing through publish at most once
// per every per poll (clock nil: the real one) and registers its counter.
func NewNotifier(publish Publish, every time.Duration, clock Clock, log *zap.Logger, reg prometheus.Registerer) *Notifier {
	if clock == nil {
		clock = realClock{}
	}
	ev := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_live_notices_published_total",
		Help: "Counter-change notices of this process, by event: published, publish_failed, coalesced (a change folded into a pending publish).",
	}, []string{"event"})
	for _, e := range []string{"published", "publish_failed", "coalesced"} {
		ev.WithLabelValues(e)
	}
	if reg != nil {
		reg.MustRegister(ev)
	}
	return &Notifier{publish: publish, every: every, clock: clock, log: log, events: ev, open: map[id.ID]bool{}}
}

// Changed records that the poll's counters changed; it never waits for
// Redis.
func (n *Notifier) Changed(pollID id.ID) {
	n.mu.Lock()
	if _, ok := n.open[pollID]; ok {
		n.open[pollID] = true
		n.mu.Unlock()
		n.events.WithLabelValues("coalesced").Inc()
		return
	}
	n.open[pollID] = false
	n.mu.Unlock()
	at := n.clock.Now()
	n.clock.AfterFunc(n.every, func() { n.windowEnd(pollID) })
	go n.send(pollID, at)
}

// windowEnd publishes the trailing notice of a window that saw changes and
// opens the next one, or forgets the poll after a quiet window.
func (n *Notifier) windowEnd(pollID id.ID) {
	n.mu.Lock()
	if !n.open[pollID] {
		delete(n.open, pollID)
		n.mu.Unlock()
		return
	}
	n.open[pollID] = false
	n.mu.Unlock()
	at := n.clock.Now()
	n.clock.AfterFunc(n.every, func() { n.windowEnd(pollID) })
	n.send(pollID, at)
}

func (n *Notifier) send(pollID id.ID, at time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), noticePublishTimeout)
	defer cancel()
	if err := n.publish(ctx, pollID, at); err != nil {
		n.events.WithLabelValues("publish_failed").Inc()
		n.log.Debug("publish counts notice; watchers see the change at their next backstop read",
			zap.Stringer("poll_id", pollID), zap.Error(err))
		return
	}
	n.events.WithLabelValues("published").Inc()
}
