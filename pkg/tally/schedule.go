package tally

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tally-vote/tally/pkg/id"
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
	// counted from rows on demand. A pending final tally (PendingFinals)
	// is never dropped: past FinalizeWait the job warns, takes a new
	// watermark and keeps trying.
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
	PollID id.ID  `json:"poll_id"`
	Reason string `json:"reason"`
}

// RequestSender hands reconciliation requests to the workers (pkg/kafkax/reconcile
// implements it on Kafka).
type RequestSender interface {
	Send(ctx context.Context, req ReconcileRequest) error
}

// PartitionProgress is one partition of the votes topic: its end (the
// offset the next message gets) and how far the workers have committed.
type PartitionProgress struct {
	End, Committed int64
}

// PendingFinal is a poll whose final tally is due to be frozen at Due: its
// end time, or when its owner closed it.
type PendingFinal struct {
	PollID id.ID
	Due    time.Time
}

// PendingFinals keeps the final tallies still to be frozen durably
// (pkg/cassandra implements it), so that no freeze is lost to a restart,
// a lost request, a failed run or a long outage: a row stays until the
// poll's tally is frozen.
type PendingFinals interface {
	Schedule(ctx context.Context, f PendingFinal) error
	Done(ctx context.Context, f PendingFinal) error
	// Due lists the rows due at or before now.
	Due(ctx context.Context, now time.Time) ([]PendingFinal, error)
}

// Offsets reads the votes topic's progress, per partition.
type Offsets func(ctx context.Context) (map[int]PartitionProgress, error)

// Reconciler runs tally reconciliation: on demand, when a poll closes, and
// on a schedule for polls that are receiving votes.
type Reconciler struct {
	cfg     ReconcileConfig
	tally   *Service
	polls   func(ctx context.Context, id id.ID) (*poll.Poll, error)
	sender  RequestSender
	offsets Offsets
	pending PendingFinals
	// region names this region among several sharing one Cassandra
	// cluster ("" for a single region); drains holds every region's
	// drain point.
	region   string
	drains   RegionDrains
	log      *zap.Logger
	now      func() time.Time
	waiting  prometheus.Gauge
	drainAge *prometheus.GaugeVec

	mu   sync.Mutex
	seen map[id.ID]bool
	// scheduled is the due time this process last recorded in pending
	// for each poll that received votes here, so a poll's row is written
	// once per process, not once per vote.
	scheduled map[id.ID]time.Time
	// finals are closed polls waiting for the worker group to pass their
	// watermark before their tally is frozen; each came from a row of
	// pending (row), or from this process alone when row is zero.
	finals map[id.ID]*pendingFinal
}

type pendingFinal struct {
	row       PendingFinal
	closed    time.Time
	watermark map[int]int64 // end offsets taken after the close grace
	taken     time.Time
}

// ReconcilerDeps are the job's ports.
type ReconcilerDeps struct {
	Tally   *Service
	Polls   func(ctx context.Context, id id.ID) (*poll.Poll, error)
	Sender  RequestSender
	Offsets Offsets
	Pending PendingFinals
	// Region and Drains make a freeze wait for every region's queue
	// (docs/multi-region.md); both empty in a single region.
	Region  string
	Drains  RegionDrains
	Log     *zap.Logger
	Now     func() time.Time
	Metrics prometheus.Registerer
}

// NewReconciler builds the job and registers its metrics.
func NewReconciler(cfg ReconcileConfig, d ReconcilerDeps) *Reconciler {
	waiting := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_finals_waiting",
		Help: "Closed polls whose final tally this worker is waiting to freeze (their votes watermark not yet passed, or the freeze failing).",
	})
	drainAge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tally_region_drain_age_seconds",
		Help: "How old another region's recorded drain point was when this region last waited on it for a freeze (a region that stopped draining holds final tallies back).",
	}, []string{"region"})
	d.Metrics.MustRegister(waiting, drainAge)
	return &Reconciler{cfg: cfg, tally: d.Tally, polls: d.Polls, sender: d.Sender, offsets: d.Offsets, pending: d.Pending,
		region: d.Region, drains: d.Drains, log: d.Log, now: d.Now, waiting: waiting, drainAge: drainAge,
		seen: map[id.ID]bool{}, scheduled: map[id.ID]time.Time{}, finals: map[id.ID]*pendingFinal{}}
}

// Enqueue asks the job to reconcile a poll.
func (r *Reconciler) Enqueue(ctx context.Context, pollID id.ID, reason string) error {
	return r.sender.Send(ctx, ReconcileRequest{PollID: pollID, Reason: reason})
}

// PollClosed is the hook for an owner closing a poll: the final tally is
// recorded as due now (durably: Finalize in any worker freezes it), and a
// request goes to the workers so the counters are repaired at once; with
// Kafka unavailable this process finalizes it too.
func (r *Reconciler) PollClosed(ctx context.Context, p *poll.Poll) {
	if closed := p.ClosedSince(r.now()); !closed.IsZero() {
		if err := r.pending.Schedule(ctx, PendingFinal{PollID: p.ID, Due: closed}); err != nil {
			r.log.Error("record the closed poll's pending final tally", zap.Stringer("poll_id", p.ID), zap.Error(err))
		}
	}
	if err := r.Enqueue(ctx, p.ID, "closed"); err != nil {
		// This process's Finalize freezes it instead (if it runs one).
		r.log.Warn("enqueue reconciliation, finalizing here", zap.Stringer("poll_id", p.ID), zap.Error(err))
		r.closing(p, PendingFinal{})
	}
}

// Seen records that a poll received a counted ballot, on any path (the
// worker, sync mode, a write-through): it is reconciled on the next round,
// and its final tally is recorded as due at its end time, once per poll
// and end time in this process. A failed write is retried on the next
// ballot; it never fails the vote.
func (r *Reconciler) Seen(ctx context.Context, p *poll.Poll) {
	r.mu.Lock()
	r.seen[p.ID] = true
	due, done := r.scheduled[p.ID]
	r.mu.Unlock()
	if done && due.Equal(p.EndTime) {
		return
	}
	if err := r.pending.Schedule(ctx, PendingFinal{PollID: p.ID, Due: p.EndTime}); err != nil {
		r.log.Warn("record the poll's pending final tally", zap.Stringer("poll_id", p.ID), zap.Error(err))
		return
	}
	r.mu.Lock()
	if len(r.scheduled) >= maxFinalMemo {
		clear(r.scheduled) // bounded: forgetting only costs a repeated write
	}
	r.scheduled[p.ID] = p.EndTime
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
// since the last round. (Their final tallies are PendingFinals' business.)
func (r *Reconciler) due() map[id.ID]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[id.ID]string, len(r.seen))
	for id := range r.seen {
		out[id] = "scheduled"
	}
	r.seen = map[id.ID]bool{}
	return out
}

// Run reconciles one poll now. With wait, a closed poll's run waits (up
// to FinalizeWait) until the worker group has passed the poll's watermark
// and then freezes its final tally. progress may be nil.
func (r *Reconciler) Run(ctx context.Context, pollID id.ID, wait bool, progress func(done, total int, ballots int64)) (Report, error) {
	p, err := r.polls(ctx, pollID)
	if err != nil {
		return Report{}, err
	}
	closed := p.ClosedSince(r.now())
	if !wait || closed.IsZero() {
		return r.tally.Reconcile(ctx, p, r.live(ctx, ReconcileOptions{Progress: progress}))
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
			return r.tally.Reconcile(ctx, p, r.live(ctx, ReconcileOptions{Progress: progress}))
		}
		if err := retry.Sleep(ctx, time.Second); err != nil {
			return Report{}, err
		}
	}
}

// passed reports whether every vote that can count for the closed poll
// has been applied: once the close grace (plus the produce allowance) is
// over, it takes the votes topic's end offsets as the watermark, and then
// waits for the worker group's commits to reach them on every partition,
// and for every other region's drain point to pass the same time.
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
	// This region's queue is past the poll; so must every other region's
	// be, or a close sent through one region freezes without the other's
	// backlog (and IF NOT EXISTS keeps the wrong number).
	return r.othersDrained(ctx, pf.closed)
}

// closing queues a closed poll's final reconciliation; Finalize runs it
// once its watermark is passed, without holding up other requests. row is
// the pending_finals row it came from (zero: this process's own).
func (r *Reconciler) closing(p *poll.Poll, row PendingFinal) {
	closed := p.ClosedSince(r.now())
	if closed.IsZero() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if pf, ok := r.finals[p.ID]; !ok {
		r.finals[p.ID] = &pendingFinal{closed: closed, row: row}
	} else if pf.row.PollID == (id.ID{}) {
		pf.row = row
	}
}

// Finalize freezes the final tallies of closed polls as their watermarks
// are passed, checking every second until ctx ends: those PendingFinals
// holds as due (whichever process recorded them, before any restart) and
// those this process was asked to close.
func (r *Reconciler) Finalize(ctx context.Context) {
	retry.Every(ctx, time.Second, func() {
		r.adoptDue(ctx)
		r.mu.Lock()
		ids := make([]id.ID, 0, len(r.finals))
		for id := range r.finals {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		r.waiting.Set(float64(len(ids)))
		for _, id := range ids {
			r.finalizeOne(ctx, id)
		}
	})
}

// adoptDue takes the pending rows that are due into finals. A row whose
// poll is not closed after all (its end time moved later) is moved to the
// new end time; one whose poll is gone is removed.
func (r *Reconciler) adoptDue(ctx context.Context) {
	due, err := r.pending.Due(ctx, r.now())
	if err != nil {
		r.log.Warn("read pending final tallies", zap.Error(err))
		return
	}
	for _, row := range due {
		r.mu.Lock()
		pf, held := r.finals[row.PollID]
		r.mu.Unlock()
		if held && pf.row == row {
			continue
		}
		p, err := r.polls(ctx, row.PollID)
		switch {
		case errors.Is(err, poll.ErrNotFound):
			_ = r.pending.Done(ctx, row)
			continue
		case err != nil:
			r.log.Warn("read a poll with a pending final tally", zap.Stringer("poll_id", row.PollID), zap.Error(err))
			continue
		}
		if p.ClosedSince(r.now()).IsZero() {
			if err := r.pending.Schedule(ctx, PendingFinal{PollID: p.ID, Due: p.EndTime}); err == nil {
				_ = r.pending.Done(ctx, row)
			}
			continue
		}
		if frozen, err := r.tally.Frozen(ctx, p.ID); err == nil && frozen {
			// Frozen already (by another worker, or a second row of the
			// poll: its end time and its owner's close).
			_ = r.pending.Done(ctx, row)
			continue
		}
		r.closing(p, row)
	}
}

func (r *Reconciler) finalizeOne(ctx context.Context, pollID id.ID) {
	r.mu.Lock()
	pf := r.finals[pollID]
	r.mu.Unlock()
	done, err := r.passed(ctx, pf)
	if err != nil {
		r.log.Warn("check the votes watermark", zap.Stringer("poll_id", pollID), zap.Error(err))
	}
	drop := func() {
		if pf.row.PollID != (id.ID{}) {
			if err := r.pending.Done(ctx, pf.row); err != nil {
				// Kept: the next round finds the row, sees the tally
				// frozen (SaveFinal is IF NOT EXISTS) and removes it.
				r.log.Warn("remove the pending final tally", zap.Stringer("poll_id", pollID), zap.Error(err))
			}
		}
		r.mu.Lock()
		delete(r.finals, pollID)
		r.mu.Unlock()
	}
	if !done {
		if !pf.taken.IsZero() && r.now().Sub(pf.taken) > r.cfg.FinalizeWait {
			// Not dropped: a freeze is never given up. A new watermark is
			// taken, in case the old one can no longer be reached.
			r.log.Warn("votes watermark not reached in time; final tally not frozen yet, still waiting",
				zap.Stringer("poll_id", pollID), zap.Duration("waited", r.now().Sub(pf.taken)))
			r.mu.Lock()
			pf.watermark, pf.taken = nil, time.Time{}
			r.mu.Unlock()
		}
		return
	}
	p, err := r.polls(ctx, pollID)
	if err == nil {
		_, err = r.tally.Reconcile(ctx, p, ReconcileOptions{Final: true})
	}
	switch {
	case err == nil, errors.Is(err, poll.ErrNotFound):
		drop()
	case errors.Is(err, ErrBusy):
	default:
		r.log.Warn("final reconciliation; will retry", zap.Stringer("poll_id", pollID), zap.Error(err))
	}
}

// Handle runs one request: a closing one is recorded as a pending final
// tally and queued for Finalize (and the counters are repaired now), any
// other reconciles at once. ErrBusy means another run of the poll's
// reconciliation covers this one.
//
// A closing request is not let go (its offset not committed) until its
// pending final is durable: reading the poll and recording the row are
// retried until they succeed or ctx ends, so a transient Cassandra error
// cannot lose an owner's close (the API records the row too, and this is
// its backup).
func (r *Reconciler) Handle(ctx context.Context, req ReconcileRequest) error {
	if req.Reason == "closed" {
		return r.handleClosed(ctx, req.PollID)
	}
	p, err := r.polls(ctx, req.PollID)
	if err != nil {
		return err
	}
	_, err = r.tally.Reconcile(ctx, p, r.live(ctx, ReconcileOptions{}))
	return err
}

func (r *Reconciler) handleClosed(ctx context.Context, pollID id.ID) error {
	var p *poll.Poll
	err := retry.Do(ctx, retry.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}, func(int) error {
		var err error
		if p, err = r.polls(ctx, pollID); errors.Is(err, poll.ErrNotFound) {
			return retry.Permanent(err)
		} else if err != nil {
			return err
		}
		closed := p.ClosedSince(r.now())
		if closed.IsZero() {
			return nil
		}
		row := PendingFinal{PollID: p.ID, Due: closed}
		if err := r.pending.Schedule(ctx, row); err != nil {
			return err
		}
		r.closing(p, row)
		return nil
	}, func(attempt int, err error, wait time.Duration) {
		r.log.Warn("record a closed poll's pending final tally; retrying", zap.Stringer("poll_id", pollID),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	})
	if err != nil {
		return err
	}
	_, err = r.tally.Reconcile(ctx, p, r.live(ctx, ReconcileOptions{}))
	return err
}
