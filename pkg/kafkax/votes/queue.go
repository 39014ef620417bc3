package votes

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/reqid"
	"github.com/tally-vote/tally/pkg/tracing"
	"github.com/tally-vote/tally/pkg/vote"
)

// Config tunes the queue side of the API.
type Config struct {
	ProduceTimeout time.Duration `env:"PRODUCE_TIMEOUT" envDefault:"3s"`
	// KafkaCooldown is how long the queue reports itself unavailable after
	// a produce failed (votes are recorded directly meanwhile), before it
	// tries Kafka again.
	KafkaCooldown time.Duration `env:"KAFKA_COOLDOWN" envDefault:"5s"`
	// KafkaDownAfter is how long Kafka must have acknowledged nothing
	// before a timed-out produce counts as Kafka down (write through)
	// rather than Kafka slow (shed with 503 OVERLOADED): a slow Kafka keeps
	// acknowledging, a hung one does not.
	KafkaDownAfter time.Duration `env:"KAFKA_DOWN_AFTER" envDefault:"5s"`
	// RequestTTL is how long a request id is remembered as accepted (the
	// admission's marker, pkg/redisx/admission; app passes it on).
	RequestTTL time.Duration `env:"REQUEST_TTL" envDefault:"24h"`
}

// Producer is the slice of kafka.Writer the queue uses.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Queue implements vote.Queue on Kafka (the votes topic). The voter's
// flag is vote's (vote.Flags, pkg/redisx/admission): the admission set it
// pending and marked the request accepted; vote marks it queued after.
type Queue struct {
	cfg       Config
	producer  Producer
	log       *zap.Logger
	now       func() time.Time
	kafkaDown atomic.Int64 // unix nanos until which Kafka is skipped
	// producedAt is unix nanos of the last acknowledged produce (or of the
	// queue's start): see slow.
	producedAt atomic.Int64
	produced   prometheus.Histogram
	shed       prometheus.Counter
	// tracer, when set (Trace), spans each produce and carries the trace
	// to the worker in the message's headers; nil costs nothing.
	tracer trace.Tracer
	topic  string
}

var _ vote.Queue = (*Queue)(nil)

// New builds the queue and registers its metric.
func New(cfg Config, producer Producer, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Queue {
	produced := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tally_ingest_produce_seconds",
		Help:    "Latency of producing one vote to Kafka with acks=all.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	shed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_ingest_shed_total",
		Help: "Votes refused with 503 OVERLOADED because Kafka was acknowledging too slowly (not down).",
	})
	reg.MustRegister(produced, shed)
	q := &Queue{cfg: cfg, producer: producer, log: log, now: now, produced: produced, shed: shed}
	q.producedAt.Store(now().UnixNano())
	return q
}

// Trace makes the queue span each produce to topic with tp's tracer and
// inject the request's trace context into the message headers. Without
// it messages carry no headers, as before tracing.
func (q *Queue) Trace(tp trace.TracerProvider, topic string) {
	q.tracer, q.topic = tp.Tracer(tracing.Scope), topic
}

// Available reports whether Kafka is to be tried: not during the cooldown
// after a failed produce.
func (q *Queue) Available() bool { return q.now().UnixNano() >= q.kafkaDown.Load() }

// Enqueue produces the ballot, whose voter the admission flagged pending;
// it returns only after every in-sync replica acknowledged it. With Kafka
// failing it returns vote.ErrQueueUnavailable (and keeps doing so for
// KafkaCooldown).
//
// With Kafka acknowledging too slowly it returns vote.ErrShed.
func (q *Queue) Enqueue(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot) error {
	if !q.Available() {
		return vote.ErrQueueUnavailable
	}
	// From here on the ballot is produced even if the client goes away: a
	// cancelled produce must not look like Kafka being down.
	ctx = context.WithoutCancel(ctx)
	if err := q.produce(ctx, p, seenAt, b); err != nil {
		if q.slow(err) {
			// Writing through would add LWTs to the busiest part of the
			// system; the client retries later instead.
			q.shed.Inc()
			return vote.ErrShed
		}
		q.kafkaDown.Store(q.now().Add(q.cfg.KafkaCooldown).UnixNano())
		q.log.Warn("kafka produce failed, votes are written directly",
			zap.Duration("for", q.cfg.KafkaCooldown), zap.Error(err))
		return errors.Join(vote.ErrQueueUnavailable, err)
	}
	return nil
}

// slow tells a produce that timed out while Kafka is still acknowledging
// (it answers, only not this fast: overload) from Kafka being down or hung
// (nothing acknowledged for KafkaDownAfter). Errors other than a timeout
// (connection refused, no leader) mean down at once.
func (q *Queue) slow(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) &&
		q.now().Sub(time.Unix(0, q.producedAt.Load())) < q.cfg.KafkaDownAfter
}

func (q *Queue) produce(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot) error {
	msg := vote.FromBallot(b)
	msg.PollSeenAt, msg.OptionsVersion, msg.PollVersion = seenAt, p.OptionsVersion, p.Version
	msg.HTTPRequestID = reqid.From(ctx)
	// The bytes json.Marshal would write (vote.Message.AppendJSON), in one
	// allocation sized for the usual message.
	body, err := msg.AppendJSON(make([]byte, 0, msg.SizeHint()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.ProduceTimeout)
	defer cancel()
	km := kafka.Message{Key: b.VoterID[:], Value: body}
	var span trace.Span
	if q.tracer != nil {
		ctx, span = q.tracer.Start(ctx, "send "+q.topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.destination.name", q.topic),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("tally.request_id", msg.RequestID.String())))
		km.Headers = kafkax.InjectTrace(ctx, nil)
	}
	start := time.Now()
	err = q.producer.WriteMessages(ctx, km)
	q.produced.Observe(time.Since(start).Seconds())
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "produce failed")
		}
		span.End()
	}
	if err == nil {
		q.producedAt.Store(q.now().UnixNano())
		// Kafka answers: a cooldown a timed-out produce started is over.
		q.kafkaDown.Store(0)
	}
	return err
}
