package tally

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/retry"
)

// ReconcileConfig tunes the reconciliation job.
type ReconcileConfig struct {
	// Interval is how often polls that received votes are reconciled.
	Interval time.Duration `env:"INTERVAL" envDefault:"60s"`
	// FinalizeDelay is the close grace: a vote accepted by an API whose
	// view of the poll predated an owner's close still counts this long
	// after the close (the worker checks it), and the final tally is
	// frozen only once every vote produced until then has been applied.
	FinalizeDelay time.Duration `env:"FINALIZE_DELAY" envDefault:"10s"`
	// FinalizeWait bounds how long a closing run waits for the worker
	// group to pass the watermark (a long outage); the final tally is then
	// counted from rows on demand until a later closing run freezes it.
	FinalizeWait time.Duration `env:"FINALIZE_WAIT" envDefault:"30m"`
	Group        string        `env:"GROUP" envDefault:"tally-reconciler"`
}

// produceAllowance is how long after its status check an accepted vote
// can still be in its produce (the accept side's produce timeout and
// then some).
const produceAllowance = 5 * time.Second

// ReconcileRequest asks the workers to reconcile a poll; Reason "closed"
// asks for its final tally.
type ReconcileRequest struct {
	PollID gocql.UUID `json:"poll_id"`
	Reason string     `json:"reason"`
}

// RequestSender hands reconciliation requests to the workers (pkg/queue
// implements it on Kafka).
type RequestSender interface {
	Send(ctx context.Context, req ReconcileRequest) error
}

// PartitionProgress is one partition of the votes topic: its end (the
// offset the next message gets) and how far the workers have committed.
type PartitionProgress struct {
	End, Committed int64
}

// Offsets reads the votes topic's progress, per partition.
type Offsets func(ctx context.Context) (map[int]PartitionProgress, error)

// Reconciler runs tally reconciliation: on demand, when a poll closes, and
// on a schedule for polls that are receiving votes.
type Reconciler struct {
	cfg     ReconcileConfig
	tally   *Service
	polls   func(ctx context.Context, id gocql.UUID) (*poll.Poll, error)
	sender  RequestSender
	offsets Offsets
	log     *zap.Logger
	now     func() time.Time

	mu   sync.Mutex
	seen map[gocql.UUID]bool
	// ending holds the end times of polls that received votes here, so a
	// poll that closes by time (not by its owner) also gets its final
	// reconciliation. It lives in memory: a restart loses it, and the
	// poll's final tally is then counted from rows on demand until
	// something reconciles it.
	ending map[gocql.UUID]time.Time
	// finals are closed polls waiting for the worker group to pass their
	// watermark before their tally is frozen.
	finals map[gocql.UUID]*pendingFinal
}

type pendingFinal struct {
	closed    time.Time
	watermark map[int]int64 // end offsets taken after the close grace
	taken     time.Time
}

// NewReconciler builds the job.
func NewReconciler(cfg ReconcileConfig, t *Service, polls func(ctx context.Context, id gocql.UUID) (*poll.Poll, error),
	sender RequestSender, offsets Offsets, log *zap.Logger, now func() time.Time) *Reconciler {
	return &Reconciler{cfg: cfg, tally: t, polls: polls, sender: sender, offsets: offsets, log: log, now: now,
		seen: map[gocql.UUID]bool{}, ending: map[gocql.UUID]time.Time{}, finals: map[gocql.UUID]*pendingFinal{}}
}

// Enqueue asks the job to reconcile a poll.
func (r *Reconciler) Enqueue(ctx context.Context, pollID gocql.UUID, reason string) error {
	return r.sender.Send(ctx, ReconcileRequest{PollID: pollID, Reason: reason})
}

// PollClosed is the hook for an owner closing a poll: enqueue, or reconcile
// in the background when Kafka is unavailable.
func (r *Reconciler) PollClosed(ctx context.Context, p *poll.Poll) {
	if err := r.Enqueue(ctx, p.ID, "closed"); err != nil {
		// This process's Finalize freezes it instead (if it runs one).
		r.log.Warn("enqueue reconciliation, finalizing here", zap.Stringer("poll_id", p.ID), zap.Error(err))
		r.closing(p)
	}
}

// Seen records that a poll received a vote (the worker's hook).
func (r *Reconciler) Seen(p *poll.Poll) {
	r.mu.Lock()
	r.seen[p.ID] = true
	r.ending[p.ID] = p.EndTime
	r.mu.Unlock()
}

// Schedule enqueues, every Interval, the polls that received votes since the
// last round, until ctx ends.
func (r *Reconciler) Schedule(ctx context.Context) {
	retry.Every(ctx, r.cfg.Interval, func() {
		for id, reason := range r.due() {
			if err := r.Enqueue(ctx, id, reason); err != nil {
				r.log.Warn("enqueue scheduled reconciliation", zap.Stringer("poll_id", id), zap.Error(err))
			}
		}
	})
}

// due returns the polls to reconcile this round: those that received votes
// ("scheduled") and those whose end time has passed ("closed", which waits
// for the drain and freezes the tally).
func (r *Reconciler) due() map[gocql.UUID]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[gocql.UUID]string, len(r.seen))
	for id := range r.seen {
		out[id] = "scheduled"
	}
	now := r.now()
	for id, end := range r.ending {
		if now.After(end) {
			out[id] = "closed"
			delete(r.ending, id)
		}
	}
	r.seen = map[gocql.UUID]bool{}
	return out
}

// Run reconciles one poll now. With wait, a closed poll's run waits (up
// to FinalizeWait) until the worker group has passed the poll's watermark
// and then freezes its final tally. progress may be nil.
func (r *Reconciler) Run(ctx context.Context, pollID gocql.UUID, wait bool, progress func(done, total int, ballots int64)) (Report, error) {
	p, err := r.polls(ctx, pollID)
	if err != nil {
		return Report{}, err
	}
	closed := p.ClosedSince(r.now())
	if !wait || closed.IsZero() {
		return r.tally.Reconcile(ctx, p, ReconcileOptions{Progress: progress})
	}
	pf := &pendingFinal{closed: closed}
	for {
		done, err := r.passed(ctx, pf)
		if err != nil {
			r.log.Warn("check the votes watermark", zap.Stringer("poll_id", p.ID), zap.Error(err))
		}
		if done {
			return r.tally.Reconcile(ctx, p, ReconcileOptions{Final: true, Progress: progress})
		}
		if !pf.taken.IsZero() && r.now().Sub(pf.taken) > r.cfg.FinalizeWait {
			r.log.Warn("votes watermark not reached; reconciling without freezing", zap.Stringer("poll_id", p.ID))
			return r.tally.Reconcile(ctx, p, ReconcileOptions{Progress: progress})
		}
		if err := retry.Sleep(ctx, time.Second); err != nil {
			return Report{}, err
		}
	}
}

// passed reports whether every vote that can count for the closed poll
// has been applied: once the close grace (plus the produce allowance) is
// over, it takes the votes topic's end offsets as the watermark, and then
// waits for the worker group's commits to reach them on every partition.
// It never needs the whole topic to be drained, so steady traffic on other
// polls does not hold a poll's final tally back.
func (r *Reconciler) passed(ctx context.Context, pf *pendingFinal) (bool, error) {
	if r.now().Before(pf.closed.Add(r.cfg.FinalizeDelay + produceAllowance)) {
		return false, nil
	}
	offs, err := r.offsets(ctx)
	if err != nil {
		return false, err
	}
	if pf.watermark == nil {
		pf.watermark, pf.taken = make(map[int]int64, len(offs)), r.now()
		for part, o := range offs {
			pf.watermark[part] = o.End
		}
	}
	for part, end := range pf.watermark {
		if offs[part].Committed < end {
			return false, nil
		}
	}
	return true, nil
}

// closing queues a closed poll's final reconciliation; Finalize runs it
// once its watermark is passed, without holding up other requests.
func (r *Reconciler) closing(p *poll.Poll) {
	closed := p.ClosedSince(r.now())
	if closed.IsZero() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.finals[p.ID]; !ok {
		r.finals[p.ID] = &pendingFinal{closed: closed}
	}
}

// Finalize freezes the final tallies of closed polls as their watermarks
// are passed, checking every second until ctx ends.
func (r *Reconciler) Finalize(ctx context.Context) {
	retry.Every(ctx, time.Second, func() {
		r.mu.Lock()
		ids := make([]gocql.UUID, 0, len(r.finals))
		for id := range r.finals {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		for _, id := range ids {
			r.finalizeOne(ctx, id)
		}
	})
}

func (r *Reconciler) finalizeOne(ctx context.Context, id gocql.UUID) {
	r.mu.Lock()
	pf := r.finals[id]
	r.mu.Unlock()
	done, err := r.passed(ctx, pf)
	if err != nil {
		r.log.Warn("check the votes watermark", zap.Stringer("poll_id", id), zap.Error(err))
	}
	drop := func() {
		r.mu.Lock()
		delete(r.finals, id)
		r.mu.Unlock()
	}
	if !done {
		if !pf.taken.IsZero() && r.now().Sub(pf.taken) > r.cfg.FinalizeWait {
			r.log.Warn("votes watermark not reached in time; final tally not frozen", zap.Stringer("poll_id", id))
			drop()
		}
		return
	}
	p, err := r.polls(ctx, id)
	if err == nil {
		_, err = r.tally.Reconcile(ctx, p, ReconcileOptions{Final: true})
	}
	switch {
	case err == nil, errors.Is(err, poll.ErrNotFound):
		drop()
	case errors.Is(err, ErrBusy):
	default:
		r.log.Warn("final reconciliation; will retry", zap.Stringer("poll_id", id), zap.Error(err))
	}
}

// Handle runs one request: a closing one is queued for Finalize (and the
// counters are repaired now), any other reconciles at once. ErrBusy means
// another run of the poll's reconciliation covers this one.
func (r *Reconciler) Handle(ctx context.Context, req ReconcileRequest) error {
	p, err := r.polls(ctx, req.PollID)
	if err != nil {
		return err
	}
	if req.Reason == "closed" {
		r.closing(p)
	}
	_, err = r.tally.Reconcile(ctx, p, ReconcileOptions{})
	return err
}
