package tally

import (
	"context"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/poll"
)

// Report is what one reconciliation found and did.
type Report struct {
	PollID gocql.UUID
	// Rows is the truth counted from ballot rows.
	Rows Counts
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
}

// ReconcileOptions steer a run.
type ReconcileOptions struct {
	// Final freezes the tally as the poll's final result. Only pass it once
	// the poll is closed and every vote accepted before the close has been
	// written.
	Final bool
	// Settle is the pause between the two measurements whose common drift
	// is repaired; votes in flight between a ballot row and its counter
	// show up in one measurement only and are left alone.
	Settle time.Duration
	// Progress, when set, is told after each index bucket is counted.
	Progress func(done, total int, ballots int64)
}

// Reconcile recounts a poll from its ballot rows, compares the counter
// shards and the cached live results with that truth, repairs them, and
// stores the count as the poll's reconciled tally.
func (s *Service) Reconcile(ctx context.Context, p *poll.Poll, opts ReconcileOptions) (Report, error) {
	rep := Report{PollID: p.ID}
	rows1, shards1, err := s.measure(ctx, p, opts.Progress)
	if err != nil {
		s.m.runs.WithLabelValues("failed").Inc()
		return rep, err
	}
	rep.Rows, rep.Counters = rows1, shards1
	rep.CounterDrift = shards1.Diff(rows1)
	rep.Repaired = NewCounts()
	if !rep.CounterDrift.IsZero() {
		time.Sleep(opts.Settle)
		rows2, shards2, err := s.measure(ctx, p, opts.Progress)
		if err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
		rep.Rows = rows2
		rep.Repaired = common(rep.CounterDrift, shards2.Diff(rows2))
		if err := s.store.AdjustShard(ctx, p.ID, 0, rep.Repaired); err != nil {
			s.m.runs.WithLabelValues("failed").Inc()
			return rep, err
		}
	}
	rep.CacheDrift = s.cacheDrift(ctx, p, rep.Rows)
	s.Invalidate(ctx, p.ID)

	rep.AsOf = s.now().UTC()
	rep.Final = opts.Final
	if err := s.store.SaveTally(ctx, p.ID, rep.Rows, rep.AsOf, opts.Final); err != nil {
		s.m.runs.WithLabelValues("failed").Inc()
		return rep, err
	}
	s.report(rep)
	s.auditReport(ctx, rep)
	return rep, nil
}

func (s *Service) auditReport(ctx context.Context, rep Report) {
	if s.audit == nil {
		return
	}
	if !rep.CounterDrift.IsZero() || rep.CacheDrift {
		s.audit.Record(ctx, rep.PollID, gocql.UUID{}, audit.DriftRepaired, map[string]any{
			"ballots": rep.Rows.Ballots, "counter_ballot_delta": rep.CounterDrift.Ballots,
			"counter_option_deltas": rep.CounterDrift.Options, "repaired_ballots": rep.Repaired.Ballots,
			"cache_drift": rep.CacheDrift})
	}
	if rep.Final {
		s.audit.Record(ctx, rep.PollID, gocql.UUID{}, audit.TallyFrozen, map[string]any{
			"ballots": rep.Rows.Ballots, "options": rep.Rows.Options, "as_of": rep.AsOf})
	}
}

func (s *Service) measure(ctx context.Context, p *poll.Poll, progress func(int, int, int64)) (Counts, Counts, error) {
	rows, err := s.store.CountRows(ctx, p.ID, p.IndexBuckets, progress)
	if err != nil {
		return rows, Counts{}, err
	}
	shards, err := s.store.SumShards(ctx, p.ID, p.CounterShards)
	return rows, shards, err
}

// common keeps, per key, the drift both measurements agree on: same sign,
// smaller magnitude.
func common(a, b Counts) Counts {
	pick := func(x, y int64) int64 {
		switch {
		case x > 0 && y > 0:
			return min(x, y)
		case x < 0 && y < 0:
			return max(x, y)
		}
		return 0
	}
	c := NewCounts()
	c.Ballots = pick(a.Ballots, b.Ballots)
	for k, v := range a.Options {
		if d := pick(v, b.Options[k]); d != 0 {
			c.Options[k] = d
		}
	}
	return c
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
		zap.Bool("final", rep.Final), zap.Bool("cache_drift", rep.CacheDrift),
	}
	if rep.CounterDrift.IsZero() && !rep.CacheDrift {
		s.m.runs.WithLabelValues("clean").Inc()
		s.log.Info("reconciled", fields...)
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
