package tally

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// Report is what one reconciliation found and did.
type Report struct {
	PollID id.ID
	// Rows is the truth counted from ballot rows: the tally of record,
	// flagged ballots included.
	Rows Counts
	// Unflagged is Rows without the ballots bot signals flagged, and
	// Flagged how many were flagged and why, counted in the same pass.
	// Nothing is repaired or frozen from them.
	Unflagged Counts
	Flagged   Flagged
	// Counters is what the counter shards summed to before repair.
	Counters Counts
	// CounterDrift is Rows minus Counters; Repaired is what was added.
	CounterDrift Counts
	Repaired     Counts
	// CacheDrift is true when the cached live results disagreed with the
	// rows (the cache was dropped).
	CacheDrift bool
	Final      bool
	AsOf       time.Time
	// Count is the method's exact count from the rows, on a final run of a
	// ranked or Schulze poll: the rows of a frozen poll no longer change,
	// so `tally reconcile --final` reproduces it whenever it is run.
	Count *count.Result `json:",omitempty"`
}

// ReconcileOptions steer a run.
type ReconcileOptions struct {
	// Final freezes the tally as the poll's final result. Only pass it once
	// the poll is closed and every vote accepted before the close has been
	// written (the caller waits for the votes topic's watermark).
	Final bool
	// Progress, when set, is told after each index bucket is counted.
	Progress func(done, total int, ballots int64)
	// MeasureOnly reports drift without repairing it: follow-up writers
	// the fence cannot see may be in flight (another region's, whose
	// fence is in its own Redis), so drift may be a vote between its
	// counter and its index row there, not a loss.
	MeasureOnly bool
}

// ErrBusy: another reconciliation of the poll is measuring it right now;
// its repair covers this one's.
var ErrBusy = errors.New("another reconciliation is measuring this poll")

// Reconcile recounts a poll from its ballot rows, compares the counter
// shards and the cached live results with that truth, repairs them, and,
// for a final run, freezes the count as the poll's final tally.
//
// The rows and the counters are measured at one instant: the fence (see
// Fence) holds the poll's follow-up writes while both are read, so a
// vote in flight between its counter and its index row cannot look like
// drift. The repair adds the difference, which stays right however many
// votes arrive after the measurement; concurrent runs are refused by the
// fence, so each real drift is repaired once. Without Redis there is no
// fence: a non-final run then reports what it measured but repairs
// nothing, while a final run (no writers are left once the watermark is
// reached) repairs as usual.
func (s *Service) Reconcile(ctx context.Context, p *poll.Poll, opts ReconcileOptions) (Report, error) {
	rep := Report{PollID: p.ID, Repaired: NewCounts()}
	if fn := s.complete.Load(); opts.Final && fn != nil {
		if err := (*fn)(ctx, p); err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
	}
	lift, err := s.fence.Raise(ctx, p.ID)
	fenced := err == nil
	switch {
	case errors.Is(err, ErrBusy):
		s.m.runs.WithLabelValues("busy").Inc()
		return rep, ErrBusy
	case err != nil && ctx.Err() != nil:
		return rep, err
	case err != nil:
		s.log.Warn("reconcile without fence: measuring only", zap.Stringer("poll_id", p.ID), zap.Error(err))
	}
	var release func() bool
	if fenced && !opts.Final && s.cfg.FenceMax > 0 {
		lift, release = s.boundFence(p.ID, lift)
	}
	rows, shards, err := s.measure(ctx, p, opts.Progress)
	if fenced {
		lift()
		if release != nil && release() {
			fenced = false // the count ran past FenceMax: measured, not repaired
		}
	}
	if err != nil {
		s.m.runs.WithLabelValues("failed").Inc()
		return rep, err
	}
	rep.Rows, rep.Unflagged, rep.Flagged, rep.Counters = rows.All, rows.Unflagged, rows.Flagged, shards
	if rows.All.Ballots > 0 {
		s.m.flagged.Observe(float64(rows.Flagged.Ballots) / float64(rows.All.Ballots))
	}
	rep.CounterDrift = shards.Diff(rows.All)
	repair := !rep.CounterDrift.IsZero() && ((fenced && !opts.MeasureOnly) || opts.Final)
	if !rep.CounterDrift.IsZero() {
		// The drift history the freeze certifies. A final run's own drift
		// must be in it, so its failure fails the run; other runs keep it
		// best effort.
		if err := s.store.RecordDrift(ctx, p.ID, s.now(), DriftOf(rep.CounterDrift, repair)); err != nil {
			if opts.Final {
				s.m.runs.WithLabelValues("failed").Inc()
				return rep, err
			}
			s.log.Warn("record drift", zap.Stringer("poll_id", p.ID), zap.Error(err))
		}
	}
	if repair {
		if err := s.store.AdjustShard(ctx, p.ID, 0, rep.CounterDrift); err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		rep.Repaired = rep.CounterDrift
	}
	rep.CacheDrift = s.cacheDrift(ctx, p, rep.Rows)
	s.Invalidate(ctx, p.ID)

	rep.AsOf = s.now().UTC()
	if opts.Final {
		f := Frozen{Counts: rep.Rows, AsOf: rep.AsOf}
		if s.audit != nil {
			// The chain's head is anchored with the tally. A head that
			// cannot be read fails the run, which is retried: a final
			// tally is never frozen without its anchor.
			head, err := s.audit.Head(ctx, p.ID)
			if err != nil {
				s.m.runs.WithLabelValues("failed").Inc()
				return rep, err
			}
			if head.Seq > 0 {
				f.Audit = &head
			}
		}
		// The drift history up to this run. Nothing writes it for this
		// poll once it is frozen: no reconciliation runs on a frozen poll's
		// counters, and its votes are all applied.
		runs, err := s.store.DriftRuns(ctx, p.ID)
		if err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		lag, err := s.store.LoadLag(ctx, p.ID)
		if err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		hist := HistoryOf(runs, lag)
		f.Drift = &hist
		if s.ledger != nil {
			// The ledger is frozen in the same write as the tally: a poll
			// whose index disagrees with its rows is not certified.
			if f.Ledger, err = s.buildLedger(ctx, p, rep.Rows.Ballots, f.AsOf); err != nil {
				s.m.runs.WithLabelValues("failed").Inc()
				return rep, err
			}
		}
		frozen, err := s.store.SaveFinal(ctx, p.ID, f)
		if err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		if err := s.checkFrozenLedger(p, f.Ledger, frozen); err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		// A final tally is written once; a later final run finds it and
		// reports it rather than replacing it.
		rep.Final = true
		if !frozen.AsOf.IsZero() {
			rep.AsOf = frozen.AsOf
		}
		rep.Count = s.finalCount(ctx, p)
		if fn := s.frozen.Load(); fn != nil {
			if frozen.AsOf.IsZero() {
				frozen = f
			}
			(*fn)(ctx, p, frozen)
		}
	}
	s.report(rep)
	s.auditReport(ctx, rep)
	if rep.Final || !rep.Repaired.IsZero() {
		s.announce(p.ID)
	}
	return rep, nil
}

// finalCount is the method's exact count of a frozen ranked or Schulze
// poll, nil for the other methods. The tally is frozen already, so a
// failed read of the ballots costs the report its count, not the run: the
// count is read again by every tally=final and every later final run.
func (s *Service) finalCount(ctx context.Context, p *poll.Poll) *count.Result {
	if !carriesCount(p) {
		return nil
	}
	ballots, scores, err := s.store.Ballots(ctx, p.ID, p.IndexBuckets)
	if err != nil {
		s.log.Warn("final count: read ballots", zap.Stringer("poll_id", p.ID), zap.Error(err))
		return nil
	}
	s.m.methodCounts.WithLabelValues(string(p.Settings.CountingMethod())).Inc()
	c := MethodCountScored(p, ballots, scores)
	return &c
}

func (s *Service) auditReport(ctx context.Context, rep Report) {
	if s.audit == nil {
		return
	}
	if !rep.CounterDrift.IsZero() || rep.CacheDrift {
		s.audit.Record(ctx, rep.PollID, id.ID{}, audit.DriftRepaired, map[string]any{
			"ballots": rep.Rows.Ballots, "counter_ballot_delta": rep.CounterDrift.Ballots,
			"counter_option_deltas": rep.CounterDrift.Options, "repaired_ballots": rep.Repaired.Ballots,
			"cache_drift": rep.CacheDrift})
	}
	if rep.Final {
		detail := map[string]any{"ballots": rep.Rows.Ballots, "options": rep.Rows.Options, "as_of": rep.AsOf,
			"flagged_ballots": rep.Flagged.Ballots}
		if rep.Count != nil {
			detail["method"], detail["winner"] = rep.Count.Method, rep.Count.Winner
		}
		s.audit.Record(ctx, rep.PollID, id.ID{}, audit.TallyFrozen, detail)
	}
}

func (s *Service) measure(ctx context.Context, p *poll.Poll, progress func(int, int, int64)) (RowCounts, Counts, error) {
	rows, err := s.store.CountRows(ctx, p.ID, p.Settings.CountingMethod(), p.IndexBuckets, progress)
	if err != nil {
		return rows, Counts{}, err
	}
	shards, err := s.store.SumShards(ctx, p.ID, p.CounterShards)
	return rows, shards, err
}

// cacheDrift compares the cached live results with the truth.
func (s *Service) cacheDrift(ctx context.Context, p *poll.Poll, rows Counts) bool {
	snap, ok := s.cached(ctx, cacheKey(Live, p.ID))
	if !ok {
		return false
	}
	d := snap.Counts.Diff(rows)
	if d.IsZero() {
		return false
	}
	s.m.drift.WithLabelValues("redis").Add(float64(abs(d.Ballots) + sumAbs(d)))
	return true
}

func (s *Service) report(rep Report) {
	fields := []zap.Field{
		zap.Stringer("poll_id", rep.PollID), zap.Int64("ballots", rep.Rows.Ballots),
		zap.Int64("flagged_ballots", rep.Flagged.Ballots),
		zap.Bool("final", rep.Final), zap.Bool("cache_drift", rep.CacheDrift),
	}
	if rep.CounterDrift.IsZero() && !rep.CacheDrift {
		s.m.runs.WithLabelValues("clean").Inc()
		s.log.Info("reconciled", fields...)
		return
	}
	if rep.Repaired.IsZero() && !rep.CounterDrift.IsZero() {
		s.m.runs.WithLabelValues("unfenced_drift").Inc()
		s.log.Warn("tally drift measured but not repaired (no fence, or another region's writers outside it); the final run repairs", append(fields,
			zap.Int64("ballot_delta", rep.CounterDrift.Ballots))...)
		return
	}
	s.m.runs.WithLabelValues("repaired").Inc()
	s.m.drift.WithLabelValues("counters").Add(float64(abs(rep.CounterDrift.Ballots) + sumAbs(rep.CounterDrift)))
	deltas := make(map[string]int64, len(rep.CounterDrift.Options))
	for k, v := range rep.CounterDrift.Options {
		deltas[k.String()] = v
	}
	s.log.Warn("tally drift repaired", append(fields,
		zap.Int64("ballot_delta", rep.CounterDrift.Ballots), zap.Any("option_deltas", deltas),
		zap.Int64("repaired_ballots", rep.Repaired.Ballots))...)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func sumAbs(c Counts) int64 {
	var n int64
	for _, v := range c.Options {
		n += abs(v)
	}
	return n
}

// boundFence lifts the fence after cfg.FenceMax if the count still runs:
// writers of the poll wait while it is up, and with them the drain batch
// that holds their follow-ups. It returns the lift to call when the count
// is done (once, whichever comes first) and released, which reports
// whether the fence came down before the count ended.
func (s *Service) boundFence(pollID id.ID, lift func()) (liftOnce func(), released func() bool) {
	var (
		once  sync.Once
		early atomic.Bool
	)
	liftOnce = func() { once.Do(lift) }
	t := time.AfterFunc(s.cfg.FenceMax, func() {
		early.Store(true)
		liftOnce()
		s.m.runs.WithLabelValues("fence_released").Inc()
		s.log.Warn("reconciliation fence lifted before the count ended; measuring without it",
			zap.Stringer("poll_id", pollID), zap.Duration("fence_max", s.cfg.FenceMax))
	})
	return liftOnce, func() bool {
		t.Stop()
		return early.Load()
	}
}
