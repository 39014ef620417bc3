package queue

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/vote"
)

// WorkerConfig tunes the drain.
type WorkerConfig struct {
	BatchSize int           `env:"BATCH_SIZE" envDefault:"512"`
	BatchWait time.Duration `env:"BATCH_WAIT" envDefault:"5ms"`
	// Concurrency is the most voters' LWTs run at once. The worker adapts
	// below it: it halves its concurrency whenever the co-located API is
	// under pressure (WorkerDeps.Yield) and adds one per batch otherwise.
	// On a box shared with Cassandra and the API a few are best
	// (bench/RESULTS.md: 8 gave far lower API latency and a higher drain
	// than 128); raise it on dedicated worker nodes.
	Concurrency int `env:"CONCURRENCY" envDefault:"8"`
	// YieldPause is how long the worker waits between batches while the
	// API is under pressure: the backlog grows in Kafka and the front door
	// keeps the CPU.
	YieldPause time.Duration `env:"YIELD_PAUSE" envDefault:"200ms"`
	// PoisonAttempts bounds retries of a message failing for a reason that
	// will not go away (unknown poll, unexpected error) before the DLQ.
	// Unavailability (Cassandra down or hung) is never such a reason: the
	// worker holds its batch and retries for as long as it takes.
	PoisonAttempts int           `env:"POISON_ATTEMPTS" envDefault:"3"`
	MaxBackoff     time.Duration `env:"MAX_BACKOFF" envDefault:"5s"`
}

// Fetcher is the slice of kafka.Reader the worker uses.
type Fetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Stats() kafka.ReaderStats
}

// WorkerPolls is what the worker needs of polls.
type WorkerPolls interface {
	// StableCached may be minutes old; Get is fresh.
	StableCached(ctx context.Context, id gocql.UUID) (*poll.Poll, error)
	Get(ctx context.Context, id gocql.UUID) (*poll.Poll, error)
	FreezeOptions(ctx context.Context, p *poll.Poll) error
}

// WorkerDeps are the worker's collaborators.
type WorkerDeps struct {
	DLQ      Producer
	Polls    WorkerPolls
	Votes    *vote.Service
	Failures vote.FailureStore
	Redis    *redis.Client
	Log      *zap.Logger
	Registry prometheus.Registerer
	// CloseGrace is how long after an owner's close a vote still counts if
	// the API that accepted it read the poll before the close.
	CloseGrace time.Duration
	// OnRecorded, when set, is told about each poll that got a ballot, so
	// reconciliation can be scheduled for active polls.
	OnRecorded func(p *poll.Poll)
	// OnDeadLetter, when set, is told about each dead-lettered vote (the
	// audit log).
	OnDeadLetter func(ctx context.Context, msg Message, cause error)
	// Yield, when set, reports whether the API beside this worker is under
	// pressure; the worker then drains at concurrency 1 with pauses.
	Yield func() bool
}

// Worker drains the votes topic into Cassandra. Offsets are committed only
// after every message of a batch was durably handled: written with its
// follow-ups, recognised as a replay, recorded as failed, or (poison only)
// dead-lettered.
type Worker struct {
	cfg     WorkerConfig
	d       WorkerDeps
	log     *zap.Logger
	m       *workerMetrics
	stalled atomic.Bool
	// conc is the adaptive concurrency, 1 to cfg.Concurrency.
	conc int
}

type workerMetrics struct {
	messages *prometheus.CounterVec
	batch    prometheus.Histogram
	lag      *prometheus.GaugeVec
	dlq      prometheus.Counter
	stalled  prometheus.Gauge
	retries  *prometheus.CounterVec
	conc     prometheus.Gauge
	yields   prometheus.Counter
	delay    prometheus.Histogram
}

// NewWorker builds a worker and registers its metrics.
func NewWorker(cfg WorkerConfig, d WorkerDeps) *Worker {
	m := &workerMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_worker_messages_total",
			Help: "Vote messages handled by the worker, by result: recorded, replayed, duplicate, refused, dead_lettered.",
		}, []string{"result"}),
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
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tally_worker_stalled", Help: "1 while the worker holds its batch because Cassandra is unavailable (back-pressure: the backlog waits in Kafka).",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_worker_retries_total", Help: "Retried worker steps by kind: transient (dependency unavailable), poison (failing message), followups.",
		}, []string{"kind"}),
	}
	m.conc = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_worker_concurrency", Help: "The worker's current LWT concurrency (adaptive: lowered while the co-located API is under pressure).",
	})
	m.yields = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_worker_yields_total", Help: "Pauses the worker took to yield the CPU to the co-located API under pressure.",
	})
	m.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tally_worker_queue_delay_seconds",
		Help:    "Time from the API accepting a vote to the worker applying it: how far the live tally trails the accepted votes (it grows while the drain yields to a burst).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	d.Registry.MustRegister(m.messages, m.batch, m.lag, m.dlq, m.stalled, m.retries, m.conc, m.yields, m.delay)
	cfg.Concurrency = max(cfg.Concurrency, 1)
	m.conc.Set(float64(cfg.Concurrency))
	return &Worker{cfg: cfg, d: d, log: d.Log, m: m, conc: cfg.Concurrency}
}

// Stalled reports whether the worker is holding a batch while a
// dependency is unavailable (for readiness and operators).
func (w *Worker) Stalled() bool { return w.stalled.Load() }

func (w *Worker) setStalled(v bool) {
	if w.stalled.Swap(v) != v {
		w.m.stalled.Set(map[bool]float64{false: 0, true: 1}[v])
		if v {
			w.log.Warn("worker stalled: holding its batch until Cassandra answers")
		} else {
			w.log.Info("worker resumed")
		}
	}
}

func (w *Worker) policy() retry.Policy {
	return retry.Policy{Base: 50 * time.Millisecond, Max: w.cfg.MaxBackoff}
}

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
		if err := w.process(ctx, batch); err != nil {
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

// adapt sets the concurrency of the next batch: halved, with a pause,
// while the API beside the worker is under pressure; one more per batch
// otherwise (additive increase, multiplicative decrease).
func (w *Worker) adapt(ctx context.Context) {
	if w.d.Yield != nil && w.d.Yield() {
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

// process applies a batch's conditional writes with bounded concurrency,
// then writes the follow-ups (counters, index rows) of the whole batch
// grouped by partition, retrying them until they are written. Messages of
// one voter (one key) are applied one after another in offset order, so
// the vote the API accepted first wins even when Redis could not stop the
// second; different voters run concurrently. It fails only when ctx ends
// or a message could be neither handled nor dead-lettered.
func (w *Worker) process(ctx context.Context, batch []kafka.Message) error {
	var (
		order []string
		byKey = map[string][]kafka.Message{}
		sem   = make(chan struct{}, w.conc)
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  error
		outs  = make([]vote.Outcome, 0, len(batch))
	)
	for _, m := range batch {
		k := string(m.Key)
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], m)
	}
	for _, k := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(msgs []kafka.Message) {
			defer func() { <-sem; wg.Done() }()
			for _, m := range msgs {
				out, err := w.handle(ctx, m)
				mu.Lock()
				if err != nil {
					errs = errors.Join(errs, err)
				} else if out.Ballot != nil {
					outs = append(outs, out)
				}
				mu.Unlock()
			}
		}(byKey[k])
	}
	wg.Wait()
	if errs != nil {
		return errs
	}
	err := retry.Do(ctx, w.policy(), func(int) error { return w.d.Votes.FollowUps(ctx, outs) },
		func(attempt int, err error, wait time.Duration) {
			w.m.retries.WithLabelValues("followups").Inc()
			w.setStalled(true)
			w.log.Warn("follow-up writes failed; retrying before commit", zap.Int("attempt", attempt),
				zap.Int("ballots", len(outs)), zap.Duration("backoff", wait), zap.Error(err))
		})
	if err == nil {
		w.setStalled(false)
	}
	return err
}

// refusal is a vote that can never be applied as accepted: it goes to the
// DLQ at once, with its reason as the request's failure.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// handle applies one message. Unavailability is retried for as long as it
// takes (until ctx ends); anything else PoisonAttempts times, then the
// message is dead-lettered. A zero Outcome with no error means the
// message needs no follow-up (failed, dead-lettered).
func (w *Worker) handle(ctx context.Context, km kafka.Message) (vote.Outcome, error) {
	msg, err := Decode(km.Value)
	if err != nil {
		return vote.Outcome{}, w.deadLetter(ctx, km, msg, err, 1)
	}
	var (
		out      vote.Outcome
		attempts int
	)
	err = retry.Do(ctx, w.policy(), func(attempt int) error {
		attempts = attempt
		var err error
		out, err = w.record(ctx, msg)
		var r refusal
		switch {
		case err == nil:
			return nil
		case errors.As(err, &r):
			return retry.Permanent(err)
		case errors.Is(err, apperr.ErrUnavailable):
			return err
		case attempt >= w.cfg.PoisonAttempts:
			return retry.Permanent(err)
		}
		return err
	}, func(attempt int, err error, wait time.Duration) {
		kind := "poison"
		if errors.Is(err, apperr.ErrUnavailable) {
			kind = "transient"
			w.setStalled(true)
		}
		w.m.retries.WithLabelValues(kind).Inc()
		w.log.Warn("vote retry", zap.Stringer("request_id", msg.RequestID), zap.String("kind", kind),
			zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(err))
	})
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return vote.Outcome{}, ctx.Err()
	}
	return vote.Outcome{}, w.deadLetter(ctx, km, msg, err, attempts)
}

// staleView is how old the accepting API's view of the poll may be before
// the worker re-reads the poll to check the vote (the API's cache is
// younger than this unless it served a stale poll through an outage).
const staleView = 5 * time.Second

func (w *Worker) record(ctx context.Context, msg Message) (vote.Outcome, error) {
	p, err := w.d.Polls.StableCached(ctx, msg.PollID)
	if err != nil {
		return vote.Outcome{}, err
	}
	if msg.OptionsVersion != p.OptionsVersion || (!msg.PollSeenAt.IsZero() && msg.AcceptedAt.Sub(msg.PollSeenAt) > staleView) {
		if p, err = w.d.Polls.Get(ctx, msg.PollID); err != nil {
			return vote.Outcome{}, err
		}
	}
	if err := w.admissible(ctx, p, msg); err != nil {
		return vote.Outcome{}, err
	}
	start := time.Now()
	out, err := w.d.Votes.ApplyQueued(ctx, p, msg.Ballot())
	switch {
	case errors.Is(err, vote.ErrAlreadyVoted):
		w.m.messages.WithLabelValues("duplicate").Inc()
		w.outcome(msg, "duplicate", start, err)
		return vote.Outcome{}, w.d.Failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
			vote.Failure{Code: vote.ErrAlreadyVoted.Code, Message: vote.ErrAlreadyVoted.Message})
	case err != nil:
		return vote.Outcome{}, err
	case out.New:
		w.m.messages.WithLabelValues("recorded").Inc()
		w.m.delay.Observe(time.Since(msg.AcceptedAt).Seconds())
		w.outcome(msg, "recorded", start, nil)
		if w.d.OnRecorded != nil {
			w.d.OnRecorded(p)
		}
	default:
		w.m.messages.WithLabelValues("replayed").Inc()
		w.outcome(msg, "replayed", start, nil)
	}
	return out, nil
}

// outcome writes the vote's worker-stage outcome line (vote.OutcomeLog):
// processing_ms is this apply, queued_ms the time since the API accepted
// it.
func (w *Worker) outcome(msg Message, outcome string, start time.Time, err error) {
	w.d.Votes.Outcomes().Write(vote.OutcomeLine{Stage: "worker", PollID: msg.PollID, RequestID: msg.RequestID,
		HTTPRequestID: msg.HTTPRequestID, Outcome: outcome, Duplicate: outcome == "duplicate",
		Failed: outcome == "dead_lettered" || outcome == "refused", Took: time.Since(start), Err: err,
		Fields: []zap.Field{zap.Int64("queued_ms", time.Since(msg.AcceptedAt).Milliseconds())}})
}

// admissible applies vote.Admissible and freezes the options the vote
// was accepted on (the API could not, if Cassandra was unreachable then).
// A vote that fails is refused: permanently invalid.
func (w *Worker) admissible(ctx context.Context, p *poll.Poll, msg Message) error {
	if err := vote.Admissible(p, msg.Ballot(), msg.PollSeenAt, msg.OptionsVersion, w.d.CloseGrace); err != nil {
		return refusal{err}
	}
	if err := w.d.Polls.FreezeOptions(ctx, p); err != nil {
		if errors.Is(err, poll.ErrOptionsChanged) {
			return refusal{err}
		}
		return err
	}
	return nil
}

// deadLetter moves a poison message to the DLQ with its error, records
// the failure so the request's status says why, and frees the voter's
// flag so they can vote again. If the DLQ itself cannot be written the
// error stops the worker uncommitted.
func (w *Worker) deadLetter(ctx context.Context, km kafka.Message, msg Message, cause error, attempts int) error {
	w.log.Error("vote dead-lettered", zap.Stringer("request_id", msg.RequestID), zap.Stringer("poll_id", msg.PollID),
		zap.Int("partition", km.Partition), zap.Int64("offset", km.Offset), zap.Int("attempts", attempts), zap.Error(cause))
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
	w.m.messages.WithLabelValues("dead_lettered").Inc()
	var r refusal
	if errors.As(cause, &r) {
		w.m.messages.WithLabelValues("refused").Inc()
		w.outcome(msg, "refused", time.Now(), cause)
	} else {
		w.outcome(msg, "dead_lettered", time.Now(), cause)
	}
	if w.d.OnDeadLetter != nil {
		w.d.OnDeadLetter(ctx, msg, cause)
	}
	if msg.RequestID == (gocql.UUID{}) {
		return nil
	}
	code := "INTERNAL"
	var coded *apperr.Error
	if errors.As(cause, &coded) {
		code = coded.Code
	}
	if err := w.d.Failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
		vote.Failure{Code: code, Message: "the vote could not be recorded: " + failureText(cause)}); err != nil {
		w.log.Warn("record dead-letter outcome", zap.Stringer("request_id", msg.RequestID), zap.Error(err))
	}
	if err := ReleaseFlag(ctx, w.d.Redis, msg.PollID, msg.VoterID, msg.RequestID); err != nil {
		w.log.Warn("release the voter's flag", zap.Stringer("request_id", msg.RequestID), zap.Error(err))
	}
	return nil
}

func failureText(err error) string {
	var coded *apperr.Error
	if errors.As(err, &coded) {
		return coded.Message
	}
	return "it is invalid"
}
