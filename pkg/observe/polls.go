package observe

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// PollSet is the set every process of a deployment shares
// (redisx.ActivePollSet): Merge adds this process's sightings, drops polls
// last seen before cut and returns how many remain.
type PollSet interface {
	Merge(ctx context.Context, seen map[id.ID]time.Time, cut time.Time) (int64, error)
}

// ActivePollsConfig says how long a poll stays active after its last
// counted vote.
type ActivePollsConfig struct {
	// Window is how long a poll counts as active after its last vote.
	Window time.Duration
	// FlushTimeout bounds the Redis round trip a scrape makes.
	FlushTimeout time.Duration
}

// pendingCap is the size past which Seen forgets polls idle for longer
// than the window, so a process nobody scrapes does not grow without bound.
const pendingCap = 4096

// ActivePolls counts the distinct polls that received a counted vote in
// any process during the last window: the polls that are live right now,
// across every API and worker pod, without scanning the polls table.
//
// A per-process set cannot give that figure: with several pods max()
// undercounts and sum() counts a poll once per pod that saw it. So each
// process keeps only the polls it saw since its last scrape, and the
// scrape merges them into one Redis sorted set (member: poll id, score: the
// last vote's time in ms, only ever raised), trims members older than the
// window and reads its size. Every process then reports the same
// deployment-wide count, a little behind for polls another pod saw since
// that pod's last scrape; aggregate it with max(). While Redis is
// unreachable the series is absent rather than wrong, and the polls seen
// meanwhile are merged at the next scrape that reaches it.
type ActivePolls struct {
	cfg  ActivePollsConfig
	set  PollSet
	log  *zap.Logger
	now  func() time.Time
	desc *prometheus.Desc

	mu      sync.Mutex
	pending map[id.ID]time.Time
}

// NewActivePolls registers tally_polls_active on reg.
func NewActivePolls(reg prometheus.Registerer, set PollSet, cfg ActivePollsConfig, log *zap.Logger,
	now func() time.Time) *ActivePolls {
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 2 * time.Second
	}
	a := &ActivePolls{cfg: cfg, set: set, log: log, now: now, pending: map[id.ID]time.Time{},
		desc: prometheus.NewDesc("tally_polls_active",
			"Distinct polls that received a counted vote in any process of the deployment during the last "+
				cfg.Window.String()+" (one shared Redis set: every process reports the same figure, take max()).",
			nil, nil)}
	reg.MustRegister(a)
	return a
}

// Seen records a counted vote on poll id. It touches no network: the
// vote path must not wait on a gauge.
func (a *ActivePolls) Seen(id id.ID) {
	t := a.now()
	a.mu.Lock()
	a.pending[id] = t
	if len(a.pending) > pendingCap {
		a.forgetIdleLocked(t.Add(-a.cfg.Window))
	}
	a.mu.Unlock()
}

func (a *ActivePolls) forgetIdleLocked(cut time.Time) {
	for p, t := range a.pending {
		if t.Before(cut) {
			delete(a.pending, p)
		}
	}
}

// Count merges the polls this process saw into the shared set, trims the
// set to the window and returns its size.
func (a *ActivePolls) Count(ctx context.Context) (int64, error) {
	now := a.now()
	cut := now.Add(-a.cfg.Window)
	a.mu.Lock()
	seen := a.pending
	a.pending = map[id.ID]time.Time{}
	a.mu.Unlock()

	fresh := make(map[id.ID]time.Time, len(seen))
	for p, t := range seen {
		if !t.Before(cut) {
			fresh[p] = t
		}
	}
	n, err := a.set.Merge(ctx, fresh, cut)
	if err != nil {
		// Keep what was seen for the next scrape, unless newer sightings
		// of the same polls arrived meanwhile.
		a.mu.Lock()
		for p, t := range seen {
			if cur, ok := a.pending[p]; (!ok || cur.Before(t)) && !t.Before(cut) {
				a.pending[p] = t
			}
		}
		a.mu.Unlock()
		return 0, err
	}
	return n, nil
}

// Describe implements prometheus.Collector.
func (a *ActivePolls) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector: one pipelined round trip per
// scrape.
func (a *ActivePolls) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.FlushTimeout)
	defer cancel()
	n, err := a.Count(ctx)
	if err != nil {
		a.log.Debug("active polls: shared set unreachable, series left out of this scrape", zap.Error(err))
		return
	}
	ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, float64(n))
}
