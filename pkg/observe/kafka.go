package observe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/retry"
)

// Kafka exports kafka-go's client statistics: messages, errors and
// retries of each writer, and errors, rebalances and timeouts of the
// worker's votes reader. kafka-go resets a writer's or reader's counters
// each time its Stats is read, so this collector must be the only reader
// of them; it adds each snapshot to running totals.
type Kafka struct {
	mu      sync.Mutex
	writers map[string]*kafka.Writer
	reader  atomic.Pointer[kafka.Reader]
	totals  map[[2]string]float64 // {series, role} -> running total

	messages, errors, retries   *prometheus.Desc
	rErrors, rebalances, rTimes *prometheus.Desc
}

// NewKafka registers the Kafka client series on reg; writers are keyed by
// role (votes, dlq, reconcile), a bounded label.
func NewKafka(reg prometheus.Registerer, writers map[string]*kafka.Writer) *Kafka {
	k := &Kafka{
		writers:    writers,
		totals:     map[[2]string]float64{},
		messages:   prometheus.NewDesc("tally_kafka_writer_messages_total", "Messages written to Kafka by writer role (votes, dlq, reconcile).", []string{"writer"}, nil),
		errors:     prometheus.NewDesc("tally_kafka_writer_errors_total", "Failed Kafka write calls by writer role.", []string{"writer"}, nil),
		retries:    prometheus.NewDesc("tally_kafka_writer_retries_total", "Kafka write attempts that were retried, by writer role.", []string{"writer"}, nil),
		rErrors:    prometheus.NewDesc("tally_kafka_reader_errors_total", "Errors of the worker's votes reader (fetch, commit, group).", nil, nil),
		rebalances: prometheus.NewDesc("tally_kafka_reader_rebalances_total", "Consumer-group rebalances the worker's votes reader went through.", nil, nil),
		rTimes:     prometheus.NewDesc("tally_kafka_reader_timeouts_total", "Fetch timeouts of the worker's votes reader.", nil, nil),
	}
	reg.MustRegister(k,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tally_kafka_produce_requests_total",
			Help: "Produce requests the writers sent to the brokers through the coalescer (TALLY_KAFKA_COALESCE): votes per request = tally_kafka_writer_messages_total / this.",
		}, func() float64 { r, _ := kafkax.ProduceStats(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tally_kafka_produce_batches_total",
			Help: "Partition batches (kafka-go sends one per partition) those produce requests carried.",
		}, func() float64 { _, b := kafkax.ProduceStats(); return float64(b) }),
	)
	return k
}

// SetReader points the reader series at r (the worker replaces its reader
// after a failure); nil detaches it.
func (k *Kafka) SetReader(r *kafka.Reader) {
	if old := k.reader.Swap(r); old != nil {
		k.drain(old.Stats())
	}
}

// Describe implements prometheus.Collector.
func (k *Kafka) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.messages, k.errors, k.retries, k.rErrors, k.rebalances, k.rTimes} {
		ch <- d
	}
}

func (k *Kafka) drain(s kafka.ReaderStats) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.totals[[2]string{"rerrors"}] += float64(s.Errors)
	k.totals[[2]string{"rebalances"}] += float64(s.Rebalances)
	k.totals[[2]string{"rtimeouts"}] += float64(s.Timeouts)
}

// Collect implements prometheus.Collector.
func (k *Kafka) Collect(ch chan<- prometheus.Metric) {
	if r := k.reader.Load(); r != nil {
		k.drain(r.Stats())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for role, w := range k.writers {
		s := w.Stats()
		k.totals[[2]string{"messages", role}] += float64(s.Messages)
		k.totals[[2]string{"errors", role}] += float64(s.Errors)
		k.totals[[2]string{"retries", role}] += float64(s.Retries)
		ch <- prometheus.MustNewConstMetric(k.messages, prometheus.CounterValue, k.totals[[2]string{"messages", role}], role)
		ch <- prometheus.MustNewConstMetric(k.errors, prometheus.CounterValue, k.totals[[2]string{"errors", role}], role)
		ch <- prometheus.MustNewConstMetric(k.retries, prometheus.CounterValue, k.totals[[2]string{"retries", role}], role)
	}
	ch <- prometheus.MustNewConstMetric(k.rErrors, prometheus.CounterValue, k.totals[[2]string{"rerrors"}])
	ch <- prometheus.MustNewConstMetric(k.rebalances, prometheus.CounterValue, k.totals[[2]string{"rebalances"}])
	ch <- prometheus.MustNewConstMetric(k.rTimes, prometheus.CounterValue, k.totals[[2]string{"rtimeouts"}])
}

// DLQ exports how many dead-lettered votes wait in the DLQ topic: the
// messages past the replay group's committed offsets (all of them when no
// replay ever ran).
type DLQ struct {
	depth  prometheus.Gauge
	errors prometheus.Counter
}

// NewDLQ registers the DLQ depth series on reg.
func NewDLQ(reg prometheus.Registerer) *DLQ {
	d := &DLQ{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tally_dlq_messages",
			Help: "Dead-lettered vote messages not yet re-driven by `tally dlq replay` (DLQ topic end minus the replay group's committed offset, summed over partitions).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_dlq_depth_errors_total", Help: "Failed reads of the DLQ topic's offsets (the depth gauge keeps its last value).",
		}),
	}
	reg.MustRegister(d.depth, d.errors)
	return d
}

// Watch reads the depth now and then every interval until ctx ends.
func (d *DLQ) Watch(ctx context.Context, every time.Duration, cfg kafkax.Config, replayGroup string) {
	d.read(ctx, cfg, replayGroup)
	retry.Every(ctx, every, func() { d.read(ctx, cfg, replayGroup) })
}

func (d *DLQ) read(ctx context.Context, cfg kafkax.Config, replayGroup string) {
	offs, err := kafkax.GroupOffsets(ctx, cfg, cfg.DLQTopic, replayGroup)
	if err != nil {
		d.errors.Inc()
		return
	}
	var n int64
	for _, o := range offs {
		n += max(o.End-o.Committed, 0)
	}
	d.depth.Set(float64(n))
}
