package tally

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// RowCounts is one pass over a poll's ballot rows (its vote index), counted
// with and without the ballots that bot signals flagged (pkg/abuse).
type RowCounts struct {
	// All counts every ballot, flagged or not: the tally of record.
	All Counts `json:"all"`
	// Unflagged counts only the ballots that carry no flag.
	Unflagged Counts `json:"unflagged"`
	// Flagged says how many ballots were flagged and why.
	Flagged Flagged `json:"flagged"`
}

// Flagged is the flagged part of a count: aggregates only, never who.
type Flagged struct {
	// Ballots carry at least one flag.
	Ballots int64 `json:"ballots"`
	// ByReason counts ballots per rule name. A ballot that tripped two
	// rules counts under both, so the reasons may add up to more than
	// Ballots.
	ByReason map[string]int64 `json:"by_reason"`
}

// NewRowCounts returns empty counts.
func NewRowCounts() RowCounts {
	return RowCounts{All: NewCounts(), Unflagged: NewCounts(), Flagged: Flagged{ByReason: map[string]int64{}}}
}

// Add counts one ballot row with its options and flags. Empty and repeated
// flag names are ignored; a ballot with no flag left is unflagged.
func (r *RowCounts) Add(options []id.ID, flags []string) {
	r.AddBallot(count.Approval, options, nil, flags)
}

// AddBallot counts one ballot row under method m (Counts.AddBallot), with
// its flags as Add does.
func (r *RowCounts) AddBallot(m count.Method, options []id.ID, scores []int, flags []string) {
	r.All.AddBallot(m, options, scores)
	flagged := false
	for i, f := range flags {
		if f == "" || slices.Contains(flags[:i], f) {
			continue
		}
		r.Flagged.ByReason[f]++
		flagged = true
	}
	if flagged {
		r.Flagged.Ballots++
		return
	}
	r.Unflagged.AddBallot(m, options, scores)
}

// FlagReport is what a poll's owner (GET /v1/polls/{id}/flags) and an
// operator (tally reconcile --exclude-flagged) see of flagged votes: how
// many and why, and the results with and without them, all from one count
// of the vote index. It never names a voter.
type FlagReport struct {
	PollID       id.ID            `json:"poll_id"`
	TotalVotes   int64            `json:"total_votes"`
	FlaggedVotes int64            `json:"flagged_votes"`
	ByReason     map[string]int64 `json:"by_reason"`
	// Results is the tally of record (flagged ballots included);
	// ResultsExcludingFlagged leaves them out.
	Results                 *Results  `json:"results"`
	ResultsExcludingFlagged *Results  `json:"results_excluding_flagged"`
	AsOf                    time.Time `json:"as_of"`
}

// BuildFlagReport shapes a count into the report. Both results documents
// are tally "final": counted from ballot rows.
func BuildFlagReport(p *poll.Poll, rc RowCounts, asOf, now time.Time) *FlagReport {
	reasons := make(map[string]int64, len(rc.Flagged.ByReason))
	for k, v := range rc.Flagged.ByReason {
		reasons[k] = v
	}
	return &FlagReport{
		PollID: p.ID, TotalVotes: rc.All.Ballots, FlaggedVotes: rc.Flagged.Ballots, ByReason: reasons,
		Results:                 BuildResults(p, rc.All, Final, asOf, now),
		ResultsExcludingFlagged: BuildResults(p, rc.Unflagged, Final, asOf, now),
		AsOf:                    asOf.UTC(),
	}
}

// RowCounts is the report's count split by flags.
func (r Report) RowCounts() RowCounts {
	return RowCounts{All: r.Rows, Unflagged: r.Unflagged, Flagged: r.Flagged}
}

// flagsMode names the flag report's cache entry (tally:flags:{poll}).
const flagsMode Mode = "flags"

// flagSnapshot is a cached count for the flag report.
type flagSnapshot struct {
	Rows RowCounts `json:"rows"`
	AsOf time.Time `json:"as_of"`
}

// Flags returns the poll's flag report for its owner (anyone else is
// poll.ErrNotOwner). The count is the one tally=final uses (countRows: at
// most one scan of the poll's index per FinalMinInterval in this process),
// and it is cached in Redis for FlagsCacheTTL. Each report built from a
// count rather than the cache is a re-tally excluding flagged votes, and is
// audited with the owner as actor: at most one audit entry per poll per
// FlagsCacheTTL however often the owner reads (with Redis down, one per
// read).
func (s *Service) Flags(ctx context.Context, p *poll.Poll, caller id.ID) (*FlagReport, error) {
	if caller != p.CreatorID {
		return nil, poll.ErrNotOwner
	}
	key := cacheKey(flagsMode, p.ID)
	b, ok, err := s.cache.Get(ctx, key)
	if ok {
		var snap flagSnapshot
		if json.Unmarshal(b, &snap) == nil && snap.Rows.All.Options != nil && snap.Rows.Flagged.ByReason != nil {
			s.m.cache.WithLabelValues(string(flagsMode), "hit").Inc()
			return BuildFlagReport(p, snap.Rows, snap.AsOf, s.now()), nil
		}
	} else if err != nil {
		s.m.cache.WithLabelValues(string(flagsMode), "error").Inc()
	}
	s.m.cache.WithLabelValues(string(flagsMode), "miss").Inc()
	v, err, _ := s.group.Do(key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		memo, _, err := s.countRows(ctx, p)
		if err != nil {
			return flagSnapshot{}, err
		}
		snap := flagSnapshot{Rows: memo.rows, AsOf: memo.asOf}
		if err := s.Retallied(ctx, p.ID, snap.Rows, snap.AsOf, caller, "api"); err != nil {
			return flagSnapshot{}, err
		}
		if b, err := json.Marshal(snap); err == nil {
			if err := s.cache.Set(ctx, key, b, s.flagsTTL()); err != nil {
				s.log.Debug("cache flag report", zap.Stringer("poll_id", p.ID), zap.Error(err))
			}
		}
		return snap, nil
	})
	if err != nil {
		return nil, err
	}
	snap := v.(flagSnapshot)
	return BuildFlagReport(p, snap.Rows, snap.AsOf, s.now()), nil
}

func (s *Service) flagsTTL() time.Duration {
	switch {
	case s.cfg.FlagsCacheTTL > 0:
		return s.cfg.FlagsCacheTTL
	case s.cfg.FinalCacheTTL > 0:
		return s.cfg.FinalCacheTTL
	}
	return 5 * time.Second
}

// Retallied records that a tally excluding flagged votes was computed and
// shown: an audit entry (actor: the owner, or zero for an operator; by:
// "api" or "cli") with the counts it showed, and tally_flag_retallies_total.
// The owner's re-tally is an owner action, chained durably: its error is
// the request's answer. An operator's goes to the unchained log.
func (s *Service) Retallied(ctx context.Context, pollID id.ID, rc RowCounts, asOf time.Time, actor id.ID, by string) error {
	s.m.retallies.WithLabelValues(by).Inc()
	s.log.Info("re-tallied excluding flagged votes", zap.Stringer("poll_id", pollID), zap.String("by", by),
		zap.Int64("ballots", rc.All.Ballots), zap.Int64("flagged", rc.Flagged.Ballots))
	if s.audit == nil {
		return nil
	}
	detail := map[string]any{
		"by": by, "as_of": asOf.UTC(),
		"ballots": rc.All.Ballots, "options": rc.All.Options,
		"flagged_ballots": rc.Flagged.Ballots, "flagged_by_reason": rc.Flagged.ByReason,
		"ballots_excluding_flagged": rc.Unflagged.Ballots, "options_excluding_flagged": rc.Unflagged.Options,
	}
	if actor.IsZero() {
		s.audit.Record(ctx, pollID, actor, audit.RetalliedExcludingFlagged, detail)
		return nil
	}
	_, err := s.audit.Append(ctx, pollID, actor, audit.RetalliedExcludingFlagged, detail)
	return err
}
