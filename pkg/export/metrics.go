package export

import "github.com/prometheus/client_golang/prometheus"

// Metrics of exports. A CLI export is a batch job: `tally export
// --metrics-textfile` writes them for node_exporter's textfile collector;
// the API's owner exports (Stream) count on the server's registry.
type Metrics struct {
	rows    *prometheus.CounterVec
	units   *prometheus.CounterVec
	unitDur *prometheus.HistogramVec
	bytes   prometheus.Counter
}

// NewMetrics registers the export metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_export_rows_total",
			Help: "Vote rows written by exports, by source: table or poll (tally export), owner (GET /v1/polls/{id}/export)."}, []string{"source"}),
		units: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_export_units_total",
			Help: "Export units (token ranges or index buckets) by outcome: read, resumed (done by an earlier run) or failed."},
			[]string{"source", "outcome"}),
		unitDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tally_export_unit_duration_seconds",
			Help:    "Time to read and write one export unit.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}, []string{"source"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_export_written_bytes_total",
			Help: "Bytes of rows appended to export outputs (before a Parquet conversion)."}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.units, m.unitDur, m.bytes)
	}
	return m
}
