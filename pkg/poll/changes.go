package poll

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// Changes carries "this poll changed" between the processes that hold
// views of polls (pkg/redisx implements it on Redis pub/sub). Delivery is
// at most once: notices sent while a process is not subscribed are lost,
// so each (re)subscription is followed by a re-read of every view held,
// and the background re-reads bound how late a lost notice makes a change.
type Changes interface {
	// Publish tells every process, this one included, that the poll
	// changed.
	Publish(ctx context.Context, pollID id.ID) error
	// Watch delivers notices to changed until ctx ends, subscribing again
	// whenever the subscription is lost; connected runs each time it is
	// (re)established.
	Watch(ctx context.Context, changed func(pollID id.ID), connected func())
}

// publishTimeout bounds a notice's publish on an owner's request: past it,
// the other processes see the change through their background re-reads.
const publishTimeout = 250 * time.Millisecond

// announce publishes a change notice of pollID, best effort.
func (s *Service) announce(ctx context.Context, pollID id.ID) {
	if s.changes == nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := s.changes.Publish(pctx, pollID); err != nil {
		s.vm.notices.WithLabelValues("publish_failed").Inc()
		s.log.Debug("publish poll change notice; other processes see it within the refresh period",
			zap.Stringer("poll_id", pollID), zap.Error(err))
		return
	}
	s.vm.notices.WithLabelValues("published").Inc()
}

// noticed handles a change notice: an id remembered as missing is
// forgotten (creation publishes), and a held view is re-read in the
// background. Readers go on being served the view meanwhile.
func (s *Service) noticed(pollID id.ID) {
	s.vm.notices.WithLabelValues("received").Inc()
	s.views.mu.Lock()
	delete(s.views.missing, pollID)
	s.views.mu.Unlock()
	s.reread(pollID)
}

// reread has a held view of pollID re-read in the background, at once.
func (s *Service) reread(pollID id.ID) {
	s.views.mu.RLock()
	e := s.views.byID[pollID]
	s.views.mu.RUnlock()
	if e == nil {
		return
	}
	e.gen.Add(1)
	select {
	case s.notices <- pollID:
	default:
		// The workers are behind: the next refresh round re-reads it,
		// since its view's gen is now behind.
	}
}

// resynced handles a (re)established subscription: notices may have been
// lost while it was down, so every view held is re-read.
func (s *Service) resynced() {
	s.vm.subscriptions.Inc()
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// viewMetrics are the view's and the change notices' series.
type viewMetrics struct {
	hits, misses, negativeHits prometheus.Counter
	refreshErrors              prometheus.Counter
	notices                    *prometheus.CounterVec
	subscriptions              prometheus.Counter
}

func newViewMetrics(reg prometheus.Registerer, s *Service) viewMetrics {
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_poll_view_reads_total",
		Help: "Reads of a poll through the process's view, by result: hit (served from memory), miss (read from " +
			"Cassandra on the reader's path: the first read of a poll, or a view past the stale-if-error bound), " +
			"negative_hit (an id recently found to name no poll, answered 404 without a read).",
	}, []string{"result"})
	m := viewMetrics{
		hits: reads.WithLabelValues("hit"), misses: reads.WithLabelValues("miss"),
		negativeHits: reads.WithLabelValues("negative_hit"),
		refreshErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_poll_view_refresh_errors_total",
			Help: "Background re-reads of a poll view that failed; the last poll read is served meanwhile (up to TALLY_POLL_STALE_IF_ERROR).",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_poll_change_notices_total",
			Help: "Poll change notices (Redis pub/sub), by event: published, publish_failed, received.",
		}, []string{"event"}),
		subscriptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_poll_change_subscriptions_total",
			Help: "Times the change-notice subscription was (re)established; each re-reads every poll view held.",
		}),
	}
	for _, e := range []string{"published", "publish_failed", "received"} {
		m.notices.WithLabelValues(e)
	}
	if reg != nil {
		reg.MustRegister(reads, m.refreshErrors, m.notices, m.subscriptions,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "tally_poll_view_oldest_age_seconds",
				Help: "Age of the oldest poll view in use (since the start of the read that filled it): how late an owner change could reach this process.",
			}, s.oldestAge),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "tally_poll_views",
				Help: "Poll views held by the process.",
			}, s.held))
	}
	return m
}
