package observe

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tally-vote/tally/pkg/id"
)

// ActivePolls counts the distinct polls that received a vote in this
// process during the last window: the polls that are live right now,
// without scanning the polls table. The set is bounded by the window.
type ActivePolls struct {
	window time.Duration
	now    func() time.Time
	mu     sync.Mutex
	last   map[id.ID]time.Time
	desc   *prometheus.Desc
}

// NewActivePolls registers tally_polls_active on reg.
func NewActivePolls(reg prometheus.Registerer, window time.Duration, now func() time.Time) *ActivePolls {
	a := &ActivePolls{window: window, now: now, last: map[id.ID]time.Time{},
		desc: prometheus.NewDesc("tally_polls_active",
			"Distinct polls that received a vote in this process during the last "+window.String()+" (take max() across workers).", nil, nil)}
	reg.MustRegister(a)
	return a
}

// Seen records a vote on poll id.
func (a *ActivePolls) Seen(id id.ID) {
	t := a.now()
	a.mu.Lock()
	a.last[id] = t
	a.mu.Unlock()
}

// Count forgets polls idle for longer than the window and returns how
// many remain.
func (a *ActivePolls) Count() int {
	cut := a.now().Add(-a.window)
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, t := range a.last {
		if t.Before(cut) {
			delete(a.last, id)
		}
	}
	return len(a.last)
}

// Describe implements prometheus.Collector.
func (a *ActivePolls) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector.
func (a *ActivePolls) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, float64(a.Count()))
}
