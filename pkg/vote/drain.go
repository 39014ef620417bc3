package vote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/retry"
)

// DrainConfig tunes the drain's retries (TALLY_WORKER_*).
type DrainConfig struct {
	// PoisonAttempts bounds retries of a message failing for a reason that
	// will not go away (unknown poll, unexpected error) before the DLQ.
	// Unavailability (Cassandra down or hung) is never such a reason: the
	// worker holds its batch and retries for as long as it takes.
	PoisonAttempts int           `env:"POISON_ATTEMPTS" envDefault:"3"`
	MaxBackoff     time.Duration `env:"MAX_BACKOFF" envDefault:"5s"`
}

// WorkerPolls is what the drain needs of polls.
type WorkerPolls interface {
	// StableCached may be minutes old; Get is fresh.
	StableCached(ctx context.Context, id id.ID) (*poll.Poll, error)
	Get(ctx context.Context, id id.ID) (*poll.Poll, error)
	FreezeOptions(ctx context.Context, p *poll.Poll) error
}

// DrainDeps are the drain's collaborators.
type DrainDeps struct {
	Polls    WorkerPolls
	Votes    *Service
	Failures FailureStore
	// Flags releases the flag of a voter whose request failed; nil
	// releases nothing.
	Flags    Flags
	Log      *zap.Logger
	Registry prometheus.Registerer
	// CloseGrace is how long after an owner's close a vote still counts if
	// the API that accepted it read the poll before the close.
	CloseGrace time.Duration
	// Frozen, when set, reports whether a poll's final tally is frozen; a
	// closed poll's vote is refused (POLL_NOT_ACTIVE) once it is, since
	// nothing may be written to a frozen poll.
	Frozen func(ctx context.Context, pollID id.ID) (bool, error)
	// OnDeadLetter, when set, is told about each dead-lettered vote (the
	// audit log).
	OnDeadLetter func(ctx context.Context, msg Message, cause error)
	// Lag, when set, is told how long after its acceptance each vote was
	// applied, per poll (the drift history a certified tally carries).
	Lag func(pollID id.ID, d time.Duration)
}

// Delivery is one message of a batch as the queue delivered it.
type Delivery struct {
	// Key orders the batch: one key's messages (one voter's) are applied
	// one after another.
	Key string
	// Message is the decoded message; Err, when set, is why it did not
	// decode (poison: dead-lettered at once).
	Message Message
	Err     error
	// Replay marks a dead-letter replay (`tally dlq replay`): it carries the
	// poll version of its first acceptance, so it is judged by the poll as
	// it is now.
	Replay bool
	// DeadLetter keeps the message aside (the dead-letter topic) with why
	// it failed and after how many attempts. An error stops the drain
	// with nothing of the batch committed.
	DeadLetter func(ctx context.Context, cause error, attempts int) error
}

// Drainer records queued ballots exactly once. Offsets are committed only
// after every message of a batch was durably handled: written with its
// follow-ups, recognised as a replay, recorded as failed, or (poison only)
// dead-lettered. The transport (pkg/kafkax/votes) commits a batch once
// Drain returned nil.
type Drainer struct {
	cfg     DrainConfig
	d       DrainDeps
	log     *zap.Logger
	m       *workerMetrics
	stalled atomic.Bool
}

type workerMetrics struct {
	messages *prometheus.CounterVec
	stalled  prometheus.Gauge
	retries  *prometheus.CounterVec
	delay    prometheus.Histogram
	rereads  *prometheus.CounterVec
}

// NewDrainer builds the drain and registers its metrics.
func NewDrainer(cfg DrainConfig, d DrainDeps) *Drainer {
	m := &workerMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_worker_messages_total",
			Help: "Vote messages handled by the worker, by result: recorded, replayed, duplicate, refused, dead_lettered.",
		}, []string{"result"}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tally_worker_stalled", Help: "1 while the worker holds its batch because Cassandra is unavailable (back-pressure: the backlog waits in Kafka).",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_worker_retries_total", Help: "Retried worker steps by kind: transient (dependency unavailable), poison (failing message), followups.",
		}, []string{"kind"}),
	}
	m.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tally_worker_queue_delay_seconds",
		Help:    "Time from the API accepting a vote to the worker applying it: how far the live tally trails the accepted votes (it grows while the drain yields to a burst).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	m.rereads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_worker_poll_rereads_total",
		Help: "Polls the worker re-read from Cassandra before judging a vote, by reason: poll_version (the API judged it by a newer poll than the worker's copy), options_or_stale_view.",
	}, []string{"reason"})
	d.Registry.MustRegister(m.messages, m.stalled, m.retries, m.delay, m.rereads)
	return &Drainer{cfg: cfg, d: d, log: d.Log, m: m}
}

// Stalled reports whether the worker is holding a batch while a
// dependency is unavailable (for readiness and operators).
func (w *Drainer) Stalled() bool { return w.stalled.Load() }

func (w *Drainer) setStalled(v bool) {
	if w.stalled.Swap(v) != v {
		w.m.stalled.Set(map[bool]float64{false: 0, true: 1}[v])
		if v {
			w.log.Warn("worker stalled: holding its batch until Cassandra answers")
		} else {
			w.log.Info("worker resumed")
		}
	}
}

func (w *Drainer) policy() retry.Policy {
	return retry.Policy{Base: 50 * time.Millisecond, Max: w.cfg.MaxBackoff}
}

// Drain applies a batch's conditional writes with at most conc at once,
// then writes the follow-ups (counters, index rows) of the whole batch
// grouped by partition, retrying them until they are written. Messages of
// one voter (one key) are applied one after another in offset order, so
// the vote the API accepted first wins even when Redis could not stop the
// second; different voters run concurrently. It fails only when ctx ends
// or a message could be neither handled nor dead-lettered.
func (w *Drainer) Drain(ctx context.Context, batch []Delivery, conc int) error {
	var (
		order []string
		byKey = map[string][]Delivery{}
		sem   = make(chan struct{}, max(conc, 1))
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  error
		outs  = make([]Outcome, 0, len(batch))
	)
	for _, m := range batch {
		k := m.Key
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], m)
	}
	for _, k := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(msgs []Delivery) {
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
func (w *Drainer) handle(ctx context.Context, km Delivery) (Outcome, error) {
	msg, err := km.Message, km.Err
	if err != nil {
		return Outcome{}, w.deadLetter(ctx, km, msg, err, 1)
	}
	var (
		out      Outcome
		attempts int
	)
	err = retry.Do(ctx, w.policy(), func(attempt int) error {
		attempts = attempt
		var err error
		out, err = w.record(ctx, msg, km.Replay)
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
		return Outcome{}, ctx.Err()
	}
	return Outcome{}, w.deadLetter(ctx, km, msg, err, attempts)
}

// staleView is how old the accepting API's view of the poll may be before
// the worker re-reads the poll to check the vote (the API's cache is
// younger than this unless it served a stale poll through an outage).
const staleView = 5 * time.Second

// poll is the poll to judge msg by: the worker's cached copy, unless the
// API judged the vote by a newer version of the poll (an owner changed it
// since the copy was read: an extended end_time, a close), by other
// options, or on a stale view; then the poll as it is now. A re-read still
// older than the message's version (a replica behind the one the owner's
// change was written through) is unavailability: retried, never judged.
func (w *Drainer) poll(ctx context.Context, msg Message) (*poll.Poll, error) {
	p, err := w.d.Polls.StableCached(ctx, msg.PollID)
	if err != nil {
		return nil, err
	}
	if p.Version >= msg.PollVersion && msg.OptionsVersion == p.OptionsVersion &&
		(msg.PollSeenAt.IsZero() || msg.AcceptedAt.Sub(msg.PollSeenAt) <= staleView) {
		return p, nil
	}
	if p.Version < msg.PollVersion {
		w.m.rereads.WithLabelValues("poll_version").Inc()
	} else {
		w.m.rereads.WithLabelValues("options_or_stale_view").Inc()
	}
	if p, err = w.d.Polls.Get(ctx, msg.PollID); err != nil {
		return nil, err
	}
	if p.Version < msg.PollVersion {
		return nil, apperr.Unavailable("read poll", fmt.Errorf("poll version %d is older than the vote's %d",
			p.Version, msg.PollVersion))
	}
	return p, nil
}

func (w *Drainer) record(ctx context.Context, msg Message, replay bool) (Outcome, error) {
	p, err := w.poll(ctx, msg)
	if err != nil {
		return Outcome{}, err
	}
	// A replay carries the poll version of its first acceptance, however
	// long ago: a cached copy as old may miss a close (and so the freeze
	// check below), so a replay is judged by the poll as it is now.
	if replay {
		if p, err = w.d.Polls.Get(ctx, msg.PollID); err != nil {
			return Outcome{}, err
		}
	}
	if err := w.admissible(ctx, p, msg); err != nil {
		return Outcome{}, err
	}
	start := time.Now()
	var out Outcome
	if msg.Change != "" {
		out, err = w.d.Votes.ApplyChange(ctx, p, msg.Ballot())
	} else {
		out, err = w.d.Votes.ApplyQueued(ctx, p, msg.Ballot())
	}
	switch {
	case msg.Change != "" && (errors.Is(err, ErrNothingToChange) || errors.Is(err, ErrChangeLimit) || errors.Is(err, ErrChangeNotAllowed)):
		// A queued change that cannot apply: final, like a duplicate.
		var coded *apperr.Error
		errors.As(err, &coded)
		w.m.messages.WithLabelValues("duplicate").Inc()
		w.outcome(msg, "refused", start, err)
		return Outcome{}, w.d.Failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
			Failure{Code: coded.Code.String(), Message: coded.Message})
	case errors.Is(err, ErrAlreadyVoted), errors.Is(err, ErrChangeLimit):
		// ErrChangeLimit: a vote cast again after a revoke, past the
		// voter's change limit; as final as a duplicate.
		refused := ErrAlreadyVoted
		if errors.Is(err, ErrChangeLimit) {
			refused = ErrChangeLimit
		}
		w.m.messages.WithLabelValues("duplicate").Inc()
		w.outcome(msg, "duplicate", start, err)
		return Outcome{}, w.d.Failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
			Failure{Code: refused.Code.String(), Message: refused.Message})
	case err != nil:
		return Outcome{}, err
	case out.New:
		w.m.messages.WithLabelValues("recorded").Inc()
		delay := time.Since(msg.AcceptedAt)
		w.m.delay.Observe(delay.Seconds())
		if w.d.Lag != nil {
			w.d.Lag(msg.PollID, delay)
		}
		w.outcome(msg, "recorded", start, nil)
	default:
		w.m.messages.WithLabelValues("replayed").Inc()
		w.outcome(msg, "replayed", start, nil)
		if out.Ballot.Revoked && w.d.Flags != nil {
			// A retry of a vote since revoked took the voter's flag again
			// (the revoke had released it): free it, or the voter could
			// not vote again until it expires. Release only deletes the
			// flag while it holds this request.
			if err := w.d.Flags.Release(ctx, msg.PollID, msg.VoterID, msg.RequestID); err != nil {
				w.log.Warn("release the voter's flag", zap.Stringer("request_id", msg.RequestID), zap.Error(err))
			}
		}
	}
	return out, nil
}

// outcome writes the vote's worker-stage outcome line (OutcomeLog):
// processing_ms is this apply, queued_ms the time since the API accepted
// it.
func (w *Drainer) outcome(msg Message, outcome string, start time.Time, err error) {
	w.d.Votes.Outcomes().Write(OutcomeLine{Stage: "worker", PollID: msg.PollID, RequestID: msg.RequestID,
		HTTPRequestID: msg.HTTPRequestID, Outcome: outcome, Duplicate: outcome == "duplicate",
		Failed: outcome == "dead_lettered" || outcome == "refused", Took: time.Since(start), Err: err,
		Fields: []zap.Field{zap.Int64("queued_ms", time.Since(msg.AcceptedAt).Milliseconds())}})
}

// admissible applies Admissible and freezes the options the vote
// was accepted on (the API could not, if Cassandra was unreachable then).
// A vote that fails is refused: permanently invalid.
func (w *Drainer) admissible(ctx context.Context, p *poll.Poll, msg Message) error {
	if err := Admissible(p, msg.Ballot(), Judged{PollVersion: msg.PollVersion, OptionsVersion: msg.OptionsVersion},
		w.d.CloseGrace); err != nil {
		return refusal{err}
	}
	// A vote accepted while the poll was open can still arrive after its
	// final tally froze: a dead-letter replay re-sends the original
	// AcceptedAt. Only a closed poll can be frozen, so open polls' votes
	// skip the read. Checking here rather than in the replay tool also
	// covers a replay produced just before the freeze and applied after it.
	if w.d.Frozen != nil && !p.ClosedSince(time.Now()).IsZero() {
		frozen, err := w.d.Frozen(ctx, p.ID)
		if err != nil {
			return err
		}
		if frozen {
			return refusal{ErrFinalFrozen}
		}
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
func (w *Drainer) deadLetter(ctx context.Context, km Delivery, msg Message, cause error, attempts int) error {
	err := km.DeadLetter(ctx, cause, attempts)
	if err != nil {
		return err
	}
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
	if msg.RequestID == (id.ID{}) {
		return nil
	}
	code := apperr.CodeInternal
	var coded *apperr.Error
	if errors.As(cause, &coded) {
		code = coded.Code
	}
	if err := w.d.Failures.SaveFailure(ctx, msg.PollID, msg.VoterID, msg.RequestID,
		Failure{Code: code.String(), Message: "the vote could not be recorded: " + failureText(cause)}); err != nil {
		w.log.Warn("record dead-letter outcome", zap.Stringer("request_id", msg.RequestID), zap.Error(err))
	}
	if w.d.Flags == nil {
		return nil
	}
	if err := w.d.Flags.Release(ctx, msg.PollID, msg.VoterID, msg.RequestID); err != nil {
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
