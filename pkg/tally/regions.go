package tally

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/retry"
)

// RegionDrains records, per region, how far that region's workers have
// applied its own votes topic (pkg/cassandra implements it on
// region_drains). A region's queue and consumer group are its own and
// cannot be read from another region, so each region writes what it knows
// into the one store every region reads: "every vote produced here before
// Through has been applied".
type RegionDrains interface {
	Record(ctx context.Context, region string, through time.Time) error
	// All returns every region's last recorded drain.
	All(ctx context.Context) (map[string]time.Time, error)
}

// drainRecordEvery is how often a region's drain point is advanced.
const drainRecordEvery = time.Second

// RecordDrains keeps this region's drain point current until ctx ends:
// each round it reads the votes topic's progress; once the worker group
// has committed past the end offsets taken at a round's start, every vote
// whose produce had completed by then is applied, and that start time is
// recorded. Only a process with a region name records (and only such a
// process waits for other regions before a freeze, see passed).
func (r *Reconciler) RecordDrains(ctx context.Context) {
	if r.region == "" || r.drains == nil {
		return
	}
	var (
		snapshot map[int]int64
		at       time.Time
	)
	retry.Every(ctx, drainRecordEvery, func() {
		// The time is taken before the read, so a produce that completed
		// before it is inside the end offsets read after it.
		now := r.now()
		offs, err := r.offsets(ctx)
		if err != nil {
			r.log.Warn("read the votes topic's progress for the region's drain", zap.Error(err))
			return
		}
		if snapshot != nil {
			for part, end := range snapshot {
				if offs[part].Committed < end {
					return
				}
			}
			if err := r.drains.Record(ctx, r.region, at); err != nil {
				r.log.Warn("record the region's drain", zap.String("region", r.region), zap.Error(err))
				return
			}
		}
		snapshot, at = make(map[int]int64, len(offs)), now
		for part, o := range offs {
			snapshot[part] = o.End
		}
	})
}

// othersDrained reports whether every other region has applied every vote
// it could have accepted for a poll closed at closed: their drain points
// must be past the close grace and the produce allowance, as this
// region's own watermark is (passed). A region that has never recorded a
// drain is not known to exist and is not waited for; one that stopped
// recording (down, or decommissioned without removing its row) holds
// every freeze back, which is the point: docs/multi-region.md says how to
// forget a region for good.
func (r *Reconciler) othersDrained(ctx context.Context, closed time.Time) (bool, error) {
	if r.region == "" || r.drains == nil {
		return true, nil
	}
	all, err := r.drains.All(ctx)
	if err != nil {
		return false, err
	}
	cutoff := closed.Add(r.cfg.FinalizeDelay + produceAllowance)
	now := r.now()
	ok := true
	for region, through := range all {
		if region == r.region {
			continue
		}
		r.drainAge.WithLabelValues(region).Set(now.Sub(through).Seconds())
		if through.Before(cutoff) {
			ok = false
		}
	}
	return ok, nil
}

// live steers a non-final run: with another region recorded, that
// region's follow-up writers are outside this region's fence (it lives in
// this region's Redis), so a live run measures and reports but repairs
// nothing; the final run, which waits until every region's queue is past
// the poll, repairs. Issue 19 hole 14: before, a region could "repair"
// correct counters while the other region's follow-ups were in flight.
func (r *Reconciler) live(ctx context.Context, opts ReconcileOptions) ReconcileOptions {
	if r.region == "" || r.drains == nil {
		return opts
	}
	all, err := r.drains.All(ctx)
	if err != nil {
		opts.MeasureOnly = true // cannot tell: do not risk a false repair
		return opts
	}
	for region := range all {
		if region != r.region {
			opts.MeasureOnly = true
		}
	}
	return opts
}
