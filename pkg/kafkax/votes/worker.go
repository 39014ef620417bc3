package votes

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/dlq"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/tracing"
	"github.com/tally-vote/tally/pkg/vote"
)

// WorkerConfig tunes the drain.
type WorkerConfig struct {
	BatchSize int           `env:"BATCH_SIZE" envDefault:"512"`
	BatchWait time.Duration `env:"BATCH_WAIT" envDefault:"5ms"`
	// Concurrency is the most voters' LWTs run at once. The worker adapts
	// below it: while the co-located API is under pressure
	// (WorkerDeps.Yield) it stops draining and resumes at 1, then adds one
	// per batch.
	// On a box shared with Cassandra and the API a few are best
	// (bench/RESULTS.md: 8 gave far lower API latency and a higher drain
	// than 128); raise it on dedicated worker nodes.
	Concurrency int `env:"CONCURRENCY" envDefault:"8"`
	// CatchUpConcurrency is how high the concurrency climbs while the
	// drain is behind (LagTarget) and the API beside it is neither strained
	// nor bursting, such as after a burst: the backlog drains at what
	// Cassandra gives rather than at what a share of a busy box does. Never
	// below Concurrency.
	CatchUpConcurrency int `env:"CATCHUP_CONCURRENCY" envDefault:"64"`
	// YieldPause is how often a yielding worker asks again whether the
	// pressure is over: the backlog grows in Kafka and the front door keeps
	// the CPU, Cassandra's included.
	YieldPause time.Duration `env:"YIELD_PAUSE" envDefault:"200ms"`
	// LagTarget is how far behind the API the drain may fall before strain
	// alone stops slowing it: while the oldest vote of its last batch was
	// accepted longer ago than this, a slow API does not halve the drain's
	// concurrency or pause it, and the concurrency climbs by doubling. A
	// drain that backs off whenever the co-located API is slow falls
	// behind for good once Cassandra's LWT latency times the arrival rate
	// exceeds its concurrency (Little's law); the live tally would then
	// trail by ever more. A burst still stops the drain (YieldMax).
	LagTarget time.Duration `env:"LAG_TARGET" envDefault:"500ms"`
	// YieldMax bounds one full yield: after it the worker drains for a
	// fifth of YieldMax whatever the pressure, climbing from concurrency
	// 1, so pressure that does not end (a box too small for the load)
	// still leaves the drain a sixth of the time: the live tally moves and
	// a freeze completes.
	YieldMax time.Duration `env:"YIELD_MAX" envDefault:"5s"`
	// DrainConfig is the drain's retries, under the same prefix
	// (TALLY_WORKER_POISON_ATTEMPTS, TALLY_WORKER_MAX_BACKOFF).
	vote.DrainConfig
}

// Fetcher is the slice of kafka.Reader the worker uses.
type Fetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Stats() kafka.ReaderStats
}

// WorkerDeps are the worker's collaborators.
type WorkerDeps struct {
	DLQ Producer
	// Votes records the votes (the drain decides everything about them).
	Votes    *vote.Drainer
	Log      *zap.Logger
	Registry prometheus.Registerer
	// Yield, when set, reports whether the API beside this worker is under
	// pressure (slow or busy): the worker halves its concurrency and
	// pauses YieldPause between batches.
	Yield func() bool
	// Burst, when set, reports whether votes queue at the API's door: the
	// worker then stops draining (at most YieldMax at a time) and resumes
	// at concurrency 1.
	Burst func() bool
	// Tracer, when set, spans each batch's apply (the LWTs and follow-ups
	// are its children) with a link to every message's producing request.
	Tracer trace.TracerProvider
}

// Worker carries the votes topic to vote.Drainer: it fetches a batch,
// hands it to the drain and commits its offsets only after the drain
// handled every message durably; a poison message goes to the
// dead-letter topic.
type Worker struct {
	cfg WorkerConfig
	d   WorkerDeps
	log *zap.Logger
	m   *workerMetrics
	// conc is the adaptive concurrency, 1 to cfg.Concurrency.
	conc int
	// drainUntil: after a yield that ran its full YieldMax the worker
	// drains until then whatever the pressure.
	drainUntil time.Time
	// behind: the oldest vote of the last batch waited longer than
	// LagTarget since the API accepted it.
	behind bool
	tracer trace.Tracer
}

type workerMetrics struct {
	batch    prometheus.Histogram
	lag      *prometheus.GaugeVec
	dlq      prometheus.Counter
	conc     prometheus.Gauge
	yields   prometheus.Counter
	yielding prometheus.Gauge
	yielded  prometheus.Counter
	behind   prometheus.Gauge
}

// NewWorker builds a worker and registers its metrics.
func NewWorker(cfg WorkerConfig, d WorkerDeps) *Worker {
	m := &workerMetrics{
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_worker_batch_size", Help: "Messages per worker batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_worker_consumer_lag", Help: "Messages of the votes topic not yet committed by the worker group, per partition.",
		}, []string{"partition"}),
		dlq: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_worker_dlq_total", Help: "Vote messages sent to the dead-letter topic (poison only).",
		}),
	}
	m.conc = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_worker_concurrency", Help: "The worker's current LWT concurrency (adaptive: back to 1 after yielding to the co-located API, then one more per batch).",
	})
	m.yields = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_worker_yields_total", Help: "Pauses (of TALLY_WORKER_YIELD_PAUSE) the worker took to leave the CPU to the co-located API under pressure.",
	})
	m.yielding = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_worker_yielding", Help: "1 while the worker has stopped draining to leave the CPU to the co-located API under pressure.",
	})
	m.yielded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_worker_yield_seconds_total", Help: "Time the worker spent not draining because the co-located API was under pressure.",
	})
	m.behind = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_worker_behind", Help: "1 while the oldest vote of the worker's last batch waited longer than TALLY_WORKER_LAG_TARGET: strain alone does not slow the drain then.",
	})
	d.Registry.MustRegister(m.batch, m.lag, m.dlq, m.conc, m.yields, m.yielding, m.yielded, m.behind)
	cfg.Concurrency = max(cfg.Concurrency, 1)
	m.conc.Set(float64(cfg.Concurrency))
	w := &Worker{cfg: cfg, d: d, log: d.Log, m: m, conc: cfg.Concurrency}
	if d.Tracer != nil {
		w.tracer = d.Tracer.Tracer(tracing.Scope)
	}
	return w
}

// Stalled reports whether the worker is holding a batch while a
// dependency is unavailable (for readiness and operators).
func (w *Worker) Stalled() bool { return w.d.Votes.Stalled() }

// Run drains until ctx is cancelled. A batch interrupted by shutdown is
// left uncommitted and is redelivered; replays are recognised, and those
// whose follow-ups did not finish are completed then.
func (w *Worker) Run(ctx context.Context, reader Fetcher) error {
	w.log.Info("worker started")
	for {
		w.adapt(ctx)
		batch, err := w.fetch(ctx, reader)
		if len(batch) == 0 {
			if ctx.Err() != nil {
				w.log.Info("worker stopped")
				return nil
			}
			if err != nil {
				w.log.Warn("fetch votes", zap.Error(err))
				_ = retry.Sleep(ctx, 500*time.Millisecond)
			}
			continue
		}
		w.m.batch.Observe(float64(len(batch)))
		if err := w.apply(ctx, batch); err != nil {
			if ctx.Err() != nil {
				w.log.Info("worker stopped mid-batch; the batch will be redelivered", zap.Int("messages", len(batch)))
				return nil
			}
			// Nothing of this batch is committed; it is redelivered.
			return err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = reader.CommitMessages(cctx, batch...)
		cancel()
		if err != nil {
			return err
		}
	}
}

// apply hands a batch to the drain, inside a span when tracing is on.
// One span covers the batch, as the drain writes the batch's follow-ups
// together; each message's producing request is a link rather than a
// parent, since a batch has many.
func (w *Worker) apply(ctx context.Context, batch []kafka.Message) error {
	ds := w.deliveries(batch)
	w.noteAge(ds, time.Now())
	if w.tracer == nil {
		return w.d.Votes.Drain(ctx, ds, w.conc)
	}
	links := make([]trace.Link, 0, len(batch))
	for _, km := range batch {
		if sc := kafkax.ExtractTrace(km.Headers); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
				attribute.Int("messaging.destination.partition.id", km.Partition),
				attribute.Int64("messaging.kafka.offset", km.Offset),
			}})
		}
	}
	ctx, span := w.tracer.Start(ctx, "process "+batch[0].Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", batch[0].Topic),
			attribute.String("messaging.operation.type", "process"),
			attribute.Int("messaging.batch.message_count", len(batch)),
			attribute.Int("tally.worker.concurrency", w.conc)))
	defer span.End()
	err := w.d.Votes.Drain(ctx, ds, w.conc)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "batch not applied")
	}
	return err
}

// noteAge records whether the oldest vote of a batch waited longer than
// LagTarget since its acceptance (a replay's original acceptance is old by
// nature and does not count).
func (w *Worker) noteAge(ds []vote.Delivery, now time.Time) {
	behind := false
	for _, d := range ds {
		if d.Err == nil && !d.Replay && !d.Message.AcceptedAt.IsZero() &&
			now.Sub(d.Message.AcceptedAt) > w.cfg.LagTarget {
			behind = true
			break
		}
	}
	w.behind = behind && w.cfg.LagTarget > 0
	if w.behind {
		w.m.behind.Set(1)
	} else {
		w.m.behind.Set(0)
	}
}

// adapt runs before every batch. During a burst at the API beside the
// worker (votes queueing) it drains nothing: it waits, asking again every
// YieldPause, for at most YieldMax, then goes on at concurrency 1 (a
// burst's votes wait in Kafka and the live tally trails; bench reports by
// how much, second by second). A yield that ran its full YieldMax is
// followed by YieldMax/5 of draining whatever the burst. Under pressure
// short of a burst (the API slow, not queueing) it halves its concurrency
// and pauses YieldPause, still draining, so steady traffic keeps the live
// tally close. Otherwise it adds one to the concurrency per batch, so after
// either the drain climbs back to full speed and catches up. While the
// drain is behind (LagTarget) strain does not slow it and it climbs by
// doubling, up to CatchUpConcurrency while the API is calm and to
// Concurrency while it is strained: only a burst makes it yield then.
func (w *Worker) adapt(ctx context.Context) {
	if w.d.Burst != nil && time.Now().After(w.drainUntil) && w.d.Burst() {
		w.conc = 1
		w.m.conc.Set(1)
		w.m.yielding.Set(1)
		start := time.Now()
		// A pause of 0 would spin: at least 10 ms between asks.
		pause := max(w.cfg.YieldPause, 10*time.Millisecond)
		for w.d.Burst() && time.Since(start) < w.cfg.YieldMax && ctx.Err() == nil {
			w.m.yields.Inc()
			_ = retry.Sleep(ctx, pause)
		}
		yielded := time.Since(start)
		w.m.yielded.Add(yielded.Seconds())
		w.m.yielding.Set(0)
		if yielded >= w.cfg.YieldMax && ctx.Err() == nil {
			w.drainUntil = time.Now().Add(w.cfg.YieldMax / 5)
		}
		return
	}
	if w.behind && w.d.Yield != nil {
		// Falling behind beside an API: catch up whatever the strain, and
		// with more than Concurrency while the API is calm. A dedicated
		// worker (no API beside it) runs at its Concurrency as before.
		limit := max(w.cfg.CatchUpConcurrency, w.cfg.Concurrency)
		if w.d.Yield() {
			limit = w.cfg.Concurrency
		}
		w.conc = min(w.conc*2, limit)
		w.m.conc.Set(float64(w.conc))
		return
	}
	if w.d.Yield != nil && w.d.Yield() {
		// Strained, not queueing: back off, keep draining.
		w.conc = max(1, w.conc/2)
		w.m.conc.Set(float64(w.conc))
		w.m.yields.Inc()
		_ = retry.Sleep(ctx, w.cfg.YieldPause)
		return
	}
	if w.conc < w.cfg.Concurrency {
		w.conc++
		w.m.conc.Set(float64(w.conc))
	}
}

// WatchLag exports the group's lag per partition every interval until ctx
// ends.
func (w *Worker) WatchLag(ctx context.Context, every time.Duration, lag func(context.Context) (map[int]int64, error)) {
	retry.Every(ctx, every, func() {
		byPart, err := lag(ctx)
		if err != nil {
			return
		}
		for part, n := range byPart {
			w.m.lag.WithLabelValues(strconv.Itoa(part)).Set(float64(n))
		}
	})
}

// fetch blocks for the first message, then gathers more for at most
// BatchWait.
func (w *Worker) fetch(ctx context.Context, reader Fetcher) ([]kafka.Message, error) {
	first, err := reader.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{first}
	wctx, cancel := context.WithTimeout(ctx, w.cfg.BatchWait)
	defer cancel()
	// A batch shrinks with the concurrency, so a yielding worker holds
	// Cassandra only briefly between its pauses.
	size := min(w.cfg.BatchSize, w.conc*64)
	for len(batch) < size {
		m, err := reader.FetchMessage(wctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// deliveries decodes a batch for the drain, keyed by the message key (the
// voter: see Queue.produce), each able to go to the dead-letter topic.
func (w *Worker) deliveries(batch []kafka.Message) []vote.Delivery {
	out := make([]vote.Delivery, len(batch))
	for i, km := range batch {
		msg, err := vote.Decode(km.Value)
		out[i] = vote.Delivery{Key: string(km.Key), Message: msg, Err: err, Replay: replayed(km),
			DeadLetter: func(ctx context.Context, cause error, attempts int) error {
				return w.deadLetter(ctx, km, msg, cause, attempts)
			}}
	}
	return out
}

// deadLetter writes a poison message to the DLQ with its error; the drain
// then records why the request failed and frees the voter's flag. If the
// DLQ itself cannot be written the error stops the worker uncommitted.
func (w *Worker) deadLetter(ctx context.Context, km kafka.Message, msg vote.Message, cause error, attempts int) error {
	w.log.Error("vote dead-lettered", zap.Stringer("request_id", msg.RequestID), zap.Stringer("poll_id", msg.PollID),
		zap.Int("partition", km.Partition), zap.Int64("offset", km.Offset), zap.Int("attempts", attempts), zap.Error(cause),
		tracing.LogField(ctx))
	err := w.d.DLQ.WriteMessages(ctx, kafka.Message{
		Key:   km.Key,
		Value: km.Value,
		Headers: []kafka.Header{
			{Key: "error", Value: []byte(cause.Error())},
			{Key: "attempts", Value: []byte(strconv.Itoa(attempts))},
			{Key: "source", Value: []byte(km.Topic + "/" + strconv.Itoa(km.Partition) + "/" + strconv.FormatInt(km.Offset, 10))},
		},
	})
	if err != nil {
		return err
	}
	w.m.dlq.Inc()
	return nil
}

// replayed reports whether km is a dead-letter replay (`tally dlq replay`).
func replayed(km kafka.Message) bool {
	for _, h := range km.Headers {
		if h.Key == dlq.HeaderReplayedFrom {
			return true
		}
	}
	return false
}
