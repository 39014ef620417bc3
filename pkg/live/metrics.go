package live

import "github.com/prometheus/client_golang/prometheus"

// hubMetrics are the hub's series.
type hubMetrics struct {
	subscribers *prometheus.GaugeVec
	frames      *prometheus.CounterVec
	rereads     *prometheus.CounterVec
	changes     *prometheus.CounterVec
	received    *prometheus.CounterVec
	dropped     *prometheus.CounterVec
}

func newHubMetrics(reg prometheus.Registerer) hubMetrics {
	m := hubMetrics{
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_live_subscribers", Help: "Open live-results subscriptions, by transport (ws, sse).",
		}, []string{"transport"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_frames_total", Help: "Results frames handed to live subscribers, by transport (ws, sse).",
		}, []string{"transport"}),
		rereads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_rereads_total",
			Help: "Reads of a watched poll's results by the hub (one per process, whatever its subscribers), by cause: " +
				"notice, backstop, subscribe, poll_change, resync.",
		}, []string{"cause"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_changes_total",
			Help: "Re-reads of a watched poll that found new results and broadcast them, by cause; a rising backstop " +
				"count means change notices are being lost.",
		}, []string{"cause"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_notices_received_total",
			Help: "Change notices the hub received, by kind: counts (a ballot was counted), poll (an owner change).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_hub_dropped_total",
			Help: "Live subscriptions the hub ended, by reason: slow (left MaxMissed frames in a row untaken), hidden (may no longer see the results).",
		}, []string{"reason"}),
	}
	for _, t := range []string{WebSocket, SSE} {
		m.subscribers.WithLabelValues(t)
		m.frames.WithLabelValues(t)
	}
	for _, c := range []string{causeNotice, causeBackstop, causeSubscribe, causePollChange, causeResync} {
		m.rereads.WithLabelValues(c)
		m.changes.WithLabelValues(c)
	}
	m.received.WithLabelValues("counts")
	m.received.WithLabelValues("poll")
	m.dropped.WithLabelValues(EndSlow)
	m.dropped.WithLabelValues(EndHidden)
	if reg != nil {
		reg.MustRegister(m.subscribers, m.frames, m.rereads, m.changes, m.received, m.dropped)
	}
	return m
}
