package ingest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

// WorkerConfig tunes the drain.
type WorkerConfig struct {
	BatchSize int           `env:"BATCH_SIZE" envDefault:"512"`
	BatchWait time.Duration `env:"BATCH_WAIT" envDefault:"5ms"`
	// Concurrency is how many voters' LWTs run at once. On a box shared
	// with Cassandra and the API a few are best (bench/RESULTS.md: 8 gave
	// far lower API latency and a higher drain than 128); raise it on
	// dedicated worker nodes.
	Concurrency int `env:"CONCURRENCY" envDefault:"8"`
	// PoisonAttempts bounds retries of a message failing for a reason that
	// will not go away (unknown poll, unexpected error) before the DLQ.
	PoisonAttempts int `env:"POISON_ATTEMPTS" envDefault:"3"`
	// TransientAttempts bounds retries while Cassandra is unavailable; past
	// it the message is dead-lettered (and can be replayed) rather than
	// blocking its partition forever.
	TransientAttempts int           `env:"TRANSIENT_ATTEMPTS" envDefault:"30"`
	MaxBackoff        time.Duration `env:"MAX_BACKOFF" envDefault:"5s"`
}

// Fetcher is the slice of kafka.Reader the worker uses.
type Fetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Stats() kafka.ReaderStats
}

// Worker drains the votes topic into Cassandra. Offsets are committed only
// after every message of a batch was durably handled: written, recognised
// as a replay, recorded as failed, or dead-lettered.
type Worker struct {
	cfg      WorkerConfig
	dlq      Producer
	polls    func(ctx context.Context, id gocql.UUID) (*poll.Poll, error)
	votes    *vote.Service
	failures FailureStore
	log      *zap.Logger
	m        *workerMetrics
	// OnRecorded, when set, is told about each poll that got a ballot, so
	// reconciliation can be scheduled for active polls.
	OnRecorded func(p *poll.Poll)
	// OnDeadLetter, when set, is told about each dead-lettered vote (the
	// audit log).
	OnDeadLetter func(ctx context.Context, msg Message, cause error)
}

type workerMetrics struct {
	messages *prometheus.CounterVec
	batch    prometheus.Histogram
	lag      *prometheus.GaugeVec
	dlq      prometheus.Counter
}

// NewWorker builds a worker and registers its metrics.
func NewWorker(cfg WorkerConfig, dlq Producer, polls func(ctx context.Context, id gocql.UUID) (*poll.Poll, error),
	votes *vote.Service, failures FailureStore, log *zap.Logger, reg prometheus.Registerer) *Worker {
	m := &workerMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_worker_messages_total",
			Help: "Vote messages handled by the worker, by result: recorded, replayed, duplicate, dead_lettered.",
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_worker_batch_size", Help: "Messages per worker batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_worker_consumer_lag", Help: "Messages of the votes topic not yet committed by the worker group, per partition.",
		}, []string{"partition"}),
		dlq: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_worker_dlq_total", Help: "Vote messages sent to the dead-letter topic.",
		}),
	}
	reg.MustRegister(m.messages, m.batch, m.lag, m.dlq)
	return &Worker{cfg: cfg, dlq: dlq, polls: polls, votes: votes, failures: failures, log: log, m: m}
}

// Run drains until ctx is cancelled. An in-flight batch is finished with a
// fresh context so what was written gets committed.
func (w *Worker) Run(ctx context.Context, reader Fetcher) error {
	w.log.Info("worker started")
	for {
		batch, err := w.fetch(ctx, reader)
		if len(batch) == 0 {
			if ctx.Err() != nil {
				w.log.Info("worker stopped")
				return nil
			}
			if err != nil {
				w.log.Warn("fetch votes", zap.Error(err))
				time.Sleep(500 * time.Millisecond)
			}
			continue
		}
		w.m.batch.Observe(float64(len(batch)))
		done := context.WithoutCancel(ctx)
		if err := w.process(done, batch); err != nil {
			// Nothing of this batch is committed; it is redelivered.
			return err
		}
		cctx, cancel := context.WithTimeout(done, 10*time.Second)
		err = reader.CommitMessages(cctx, batch...)
		cancel()
		if err != nil {
			return err
		}
	}
}

// WatchLag exports the group's lag per partition every interval until ctx
// ends.
func (w *Worker) WatchLag(ctx context.Context, every time.Duration, lag func(context.Context) (map[int]int64, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		byPart, err := lag(ctx)
		if err != nil {
			continue
		}
		for part, n := range byPart {
			w.m.lag.WithLabelValues(strconv.Itoa(part)).Set(float64(n))
		}
	}
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
	for len(batch) < w.cfg.BatchSize {
		m, err := reader.FetchMessage(wctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process applies a batch's conditional writes with bounded concurrency,
// then writes the follow-ups (index rows, counters) of the whole batch
// grouped by partition. Messages of one voter (one key) are applied one
// after another in offset order, so the vote the API accepted first wins
// even when Redis could not stop the second; different voters run
// concurrently. It fails only when a message could be neither handled nor
// dead-lettered.
func (w *Worker) process(ctx context.Context, batch []kafka.Message) error {
	var (
		order []string
		byKey = map[string][]kafka.Message{}
		sem   = make(chan struct{}, w.cfg.Concurrency)
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
	w.votes.FollowUps(ctx, outs)
	return errs
}

// handle applies one message, retrying within bounds. A zero Outcome with
// no error means the message needs no follow-up (failed, dead-lettered).
func (w *Worker) handle(ctx context.Context, km kafka.Message) (vote.Outcome, error) {
	msg, err := Decode(km.Value)
	if err != nil {
		return vote.Outcome{}, w.deadLetter(ctx, km, msg, err, 1)
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		out, err := w.record(ctx, msg)
		if err == nil {
			return out, nil
		}
		lastErr = err
		limit := w.cfg.PoisonAttempts
		if errors.Is(err, apperr.ErrUnavailable) {
			limit = w.cfg.TransientAttempts
		}
		if attempt >= limit {
			return vote.Outcome{}, w.deadLetter(ctx, km, msg, lastErr, attempt)
		}
		backoff := min(time.Duration(1<<min(attempt, 10))*50*time.Millisecond, w.cfg.MaxBackoff)
		w.log.Warn("vote retry", zap.Stringer("request_id", msg.RequestID), zap.Int("attempt", attempt),
			zap.Duration("backoff", backoff), zap.Error(err))
		time.Sleep(backoff)
	}
}

func (w *Worker) record(ctx context.Context, msg Message) (vote.Outcome, error) {
	p, err := w.polls(ctx, msg.PollID)
	if err != nil {
		return vote.Outcome{}, err
	}
	out, err := w.votes.Apply(ctx, p, msg.Ballot())
	switch {
	case errors.Is(err, vote.ErrAlreadyVoted):
		w.m.messages.WithLabelValues("duplicate").Inc()
		return vote.Outcome{}, w.failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
			Failure{Code: vote.ErrAlreadyVoted.Code, Message: vote.ErrAlreadyVoted.Message})
	case err != nil:
		return vote.Outcome{}, err
	case out.New:
		w.m.messages.WithLabelValues("recorded").Inc()
		if w.OnRecorded != nil {
			w.OnRecorded(p)
		}
	default:
		w.m.messages.WithLabelValues("replayed").Inc()
	}
	return out, nil
}

// deadLetter moves a message that cannot be handled to the DLQ with its
// error, and records the failure so the request's status says why. If the
// DLQ itself cannot be written the error stops the worker uncommitted.
func (w *Worker) deadLetter(ctx context.Context, km kafka.Message, msg Message, cause error, attempts int) error {
	w.log.Error("vote dead-lettered", zap.Stringer("request_id", msg.RequestID), zap.Stringer("poll_id", msg.PollID),
		zap.Int("partition", km.Partition), zap.Int64("offset", km.Offset), zap.Int("attempts", attempts), zap.Error(cause))
	err := w.dlq.WriteMessages(ctx, kafka.Message{
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
	if w.OnDeadLetter != nil {
		w.OnDeadLetter(ctx, msg, cause)
	}
	if msg.RequestID != (gocql.UUID{}) {
		code := "INTERNAL"
		var coded *apperr.Error
		if errors.As(cause, &coded) {
			code = coded.Code
		}
		if err := w.failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
			Failure{Code: code, Message: "the vote could not be recorded"}); err != nil {
			w.log.Warn("record dead-letter outcome", zap.Stringer("request_id", msg.RequestID), zap.Error(err))
		}
	}
	return nil
}
