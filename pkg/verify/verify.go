package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// defaultWorkers is higher than the scan's own default: each row costs one
// point read of the index, so the ranges are latency-bound.
const defaultWorkers = 16

// pollState is what a run learns about one poll: its layout and its frozen
// final tally, read once, and the ballots its rows add up to.
type pollState struct {
	once   sync.Once
	layout Layout
	err    error
	final  tally.Frozen
	frozen bool

	mu   sync.Mutex
	rows tally.Counts
	// inFlight counts rows younger than the grace whose index row is not
	// there yet: their counter increments may still be on the way.
	inFlight int64
}

type run struct {
	ctx  context.Context
	d    Deps
	o    Options
	mu   sync.Mutex
	rep  Report
	poll map[id.ID]*pollState

	scanned, checked, missing, mismatched, inFlight, repaired, frozen atomic.Int64
}

// Run scans the votes table, checks each row's index row and each poll's
// counter shards against its rows, and repairs what Options allow.
//
// With Options.Poll the run still scans the whole table and skips other
// polls' rows: the per-poll index cannot be the source, because a row
// missing from it is exactly what the check looks for.
func Run(ctx context.Context, d Deps, o Options) (Report, error) {
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	start := d.Now()
	r := &run{ctx: ctx, d: d, o: o, poll: map[id.ID]*pollState{}}
	// Empty lists print as [] rather than null.
	r.rep.IndexProblems, r.rep.UnknownPolls, r.rep.CounterDrift = []IndexProblem{}, []id.ID{}, []Drift{}
	r.rep.FinalMismatches = []FinalMismatch{}
	err := d.Scan(ctx, scan.Options{Splits: o.Splits, Workers: o.Workers, Progress: o.Progress}, r.row)
	if err != nil {
		return Report{}, fmt.Errorf("scan votes: %w", err)
	}
	r.rep.RowsScanned, r.rep.RowsChecked = r.scanned.Load(), r.checked.Load()
	r.rep.IndexMissing, r.rep.IndexMismatched = r.missing.Load(), r.mismatched.Load()
	r.rep.IndexInFlight, r.rep.IndexRepaired = r.inFlight.Load(), r.repaired.Load()
	r.rep.IndexFrozen = r.frozen.Load()
	if err := r.counters(ctx); err != nil {
		return Report{}, err
	}
	if err := r.finals(ctx); err != nil {
		return Report{}, err
	}
	r.rep.DurationMS = d.Now().Sub(start).Milliseconds()
	r.rep.Consistent = r.rep.Remaining() == 0
	return r.rep, nil
}

func (r *run) state(ctx context.Context, pollID id.ID) *pollState {
	r.mu.Lock()
	ps, ok := r.poll[pollID]
	if !ok {
		ps = &pollState{rows: tally.NewCounts()}
		r.poll[pollID] = ps
	}
	r.mu.Unlock()
	ps.once.Do(func() {
		ps.layout, ps.err = r.d.Layout(ctx, pollID)
		if ps.err != nil && !errors.Is(ps.err, ErrUnknownPoll) {
			return
		}
		// A frozen final tally is compared with the rows whether or not
		// the poll's metadata still exists.
		var err error
		ps.final, ps.frozen, err = r.d.Finals.LoadFinal(ctx, pollID)
		if err != nil {
			ps.err = fmt.Errorf("load final tally: %w", err)
		}
	})
	return ps
}

// row checks one vote row; it runs on several scan workers at once.
func (r *run) row(v vote.Ballot) error {
	r.scanned.Add(1)
	if r.o.Poll != (id.ID{}) && v.PollID != r.o.Poll {
		return nil
	}
	r.checked.Add(1)
	ctx := r.ctx
	ps := r.state(ctx, v.PollID)
	if errors.Is(ps.err, ErrUnknownPoll) {
		return nil // listed once, after the scan
	}
	if ps.err != nil {
		return fmt.Errorf("read poll %s: %w", v.PollID, ps.err)
	}
	ps.mu.Lock()
	if !v.Revoked { // a revoked ballot's row stays and counts nothing
		ps.rows.AddBallot(ps.layout.Method, v.OptionIDs, v.Scores)
	}
	ps.mu.Unlock()

	bucket := vote.Bucket(v.VoterID, ps.layout.IndexBuckets)
	e, found, err := r.d.Index.Get(ctx, v.PollID, bucket, v.VoterID)
	if err != nil {
		return err
	}
	problem := ""
	switch {
	case !found:
		problem = "missing"
	case e.VoteID != v.VoteID || e.Version != v.Version || e.Revoked != v.Revoked ||
		(!v.Revoked && (!slices.Equal(e.Options, v.OptionIDs) || !bytes.Equal(e.Commitment, v.Commitment))):
		// A changed ballot's entry must be at its version (settle), with
		// the row's commitment (the ledger reads commitments through the
		// index).
		problem = "mismatched"
	default:
		return nil
	}
	// In flight is judged by when the row was written, not when the vote
	// was accepted: a backlog applied now carries an old VotedAt while its
	// follow-ups are still to run, and repairing it would count it twice.
	if r.o.Grace > 0 && r.d.Now().Sub(latest(latest(v.VotedAt, v.WrittenAt), v.ChangedAt)) < r.o.Grace {
		r.inFlight.Add(1)
		ps.mu.Lock()
		ps.inFlight++
		ps.mu.Unlock()
		return nil
	}
	if problem == "missing" {
		r.missing.Add(1)
	} else {
		r.mismatched.Add(1)
	}
	p := IndexProblem{PollID: v.PollID, VoterID: v.VoterID, Problem: problem}
	frozen, err := r.frozenNow(ctx, v.PollID, ps, r.o.Repair)
	if err != nil {
		return err
	}
	if frozen {
		r.frozen.Add(1)
		p.Frozen = true
		r.d.Log.Warn("vote index row of a frozen poll: reported, never repaired", zap.Stringer("poll_id", v.PollID),
			zap.Stringer("voter_id", v.VoterID), zap.String("problem", problem))
	}
	if r.o.Repair && !frozen {
		if problem == "missing" && !v.Revoked {
			// Follow-ups count a ballot before they index it, and an index
			// row means "counted" to a redelivery of the ballot: a row
			// left unindexed by a crash was not counted, so count it first.
			c := tally.NewCounts()
			c.AddBallot(ps.layout.Method, v.OptionIDs, v.Scores)
			if err := r.d.Counters.AdjustShard(ctx, v.PollID, vote.Shard(v.VoteID, ps.layout.CounterShards), c); err != nil {
				return err
			}
		}
		err := r.d.Index.Put(ctx, v.PollID, bucket, v.VoterID,
			vote.IndexEntry{VoteID: v.VoteID, Options: v.OptionIDs, VotedAt: v.VotedAt, Flags: v.Flags, Scores: v.Scores,
				Commitment: v.Commitment, Version: v.Version, Revoked: v.Revoked})
		if err != nil {
			return err
		}
		r.repaired.Add(1)
		p.Repaired = true
		r.d.Log.Info("vote index row repaired", zap.Stringer("poll_id", v.PollID),
			zap.Stringer("voter_id", v.VoterID), zap.String("problem", problem))
	}
	r.mu.Lock()
	if len(r.rep.IndexProblems) < maxProblems {
		r.rep.IndexProblems = append(r.rep.IndexProblems, p)
	}
	r.mu.Unlock()
	return nil
}

// frozenNow reports whether the poll's final tally is frozen. Before a
// repair (reread) it reads final_tallies again unless the run already
// knows: repairs are rare, and a poll may freeze while the scan runs.
func (r *run) frozenNow(ctx context.Context, pollID id.ID, ps *pollState, reread bool) (bool, error) {
	ps.mu.Lock()
	frozen := ps.frozen
	ps.mu.Unlock()
	if frozen || !reread {
		return frozen, nil
	}
	f, found, err := r.d.Finals.LoadFinal(ctx, pollID)
	if err != nil {
		return false, fmt.Errorf("load final tally of poll %s: %w", pollID, err)
	}
	if found {
		ps.mu.Lock()
		ps.final, ps.frozen = f, true
		ps.mu.Unlock()
	}
	return found, nil
}

// counters compares each poll's counter shards with its rows, in poll id
// order so reports are stable.
func (r *run) counters(ctx context.Context) error {
	ids := make([]id.ID, 0, len(r.poll))
	for id := range r.poll {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	r.rep.Polls = len(ids)
	for _, id := range ids {
		ps := r.poll[id]
		if ps.err != nil { // only ErrUnknownPoll gets this far
			r.rep.UnknownPolls = append(r.rep.UnknownPolls, id)
			continue
		}
		sums, err := r.d.Counters.SumShards(ctx, id, ps.layout.CounterShards)
		if err != nil {
			return fmt.Errorf("sum counters of poll %s: %w", id, err)
		}
		delta := sums.Diff(ps.rows)
		if delta.IsZero() {
			continue
		}
		d := Drift{PollID: id, BallotDelta: delta.Ballots, OptionDeltas: delta.Options, Rows: ps.rows, Counters: sums,
			InFlight: ps.inFlight}
		// A poll with rows in flight is measured while its follow-ups
		// still count them: a repair now would count them twice.
		repair := r.o.Repair && (r.o.RepairCounters || r.o.Poll == id) && ps.inFlight == 0
		if d.Frozen, err = r.frozenNow(ctx, id, ps, repair); err != nil {
			return err
		}
		if d.Frozen {
			r.d.Log.Warn("vote counters of a frozen poll: reported, never repaired", zap.Stringer("poll_id", id),
				zap.Int64("ballot_delta", delta.Ballots))
		}
		if repair && !d.Frozen {
			if err := r.d.Counters.AdjustShard(ctx, id, 0, delta); err != nil {
				return fmt.Errorf("repair counters of poll %s: %w", id, err)
			}
			d.Repaired = true
			r.rep.CountersRepaired++
			r.d.Log.Info("vote counters repaired", zap.Stringer("poll_id", id),
				zap.Int64("ballot_delta", delta.Ballots), zap.Int("options", len(delta.Options)))
		}
		r.rep.CounterDrift = append(r.rep.CounterDrift, d)
	}
	return nil
}

// finals compares every frozen final tally in the run's scope with the
// poll's rows as the scan counted them. A frozen poll without a single row
// is found through the final tallies themselves, since the scan never saw
// it.
func (r *run) finals(ctx context.Context) error {
	var extra []id.ID
	if r.o.Poll != (id.ID{}) {
		extra = []id.ID{r.o.Poll}
	} else {
		var err error
		if extra, err = r.d.Finals.FinalPolls(ctx); err != nil {
			return fmt.Errorf("list final tallies: %w", err)
		}
	}
	for _, pid := range extra {
		if _, ok := r.poll[pid]; ok {
			continue
		}
		f, found, err := r.d.Finals.LoadFinal(ctx, pid)
		if err != nil {
			return fmt.Errorf("load final tally of poll %s: %w", pid, err)
		}
		r.poll[pid] = &pollState{final: f, frozen: found, rows: tally.NewCounts()}
	}
	ids := make([]id.ID, 0, len(r.poll))
	for pid, ps := range r.poll {
		if ps.frozen {
			ids = append(ids, pid)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	for _, pid := range ids {
		ps := r.poll[pid]
		r.rep.FinalsChecked++
		final, rows := ps.final.Counts, ps.rows
		if final.Ballots != rows.Ballots {
			r.mismatch(FinalMismatch{PollID: pid, OptionID: tally.BallotKey, Final: final.Ballots, Rows: rows.Ballots})
		}
		opts := make([]id.ID, 0, len(final.Options)+len(rows.Options))
		for o := range final.Options {
			opts = append(opts, o)
		}
		for o := range rows.Options {
			if _, ok := final.Options[o]; !ok {
				opts = append(opts, o)
			}
		}
		sort.Slice(opts, func(i, j int) bool { return opts[i].String() < opts[j].String() })
		for _, o := range opts {
			if final.Options[o] != rows.Options[o] {
				r.mismatch(FinalMismatch{PollID: pid, OptionID: o, Final: final.Options[o], Rows: rows.Options[o]})
			}
		}
	}
	return nil
}

func (r *run) mismatch(m FinalMismatch) {
	r.rep.FinalMismatches = append(r.rep.FinalMismatches, m)
	r.d.Log.Warn("final tally differs from the vote rows", zap.Stringer("poll_id", m.PollID),
		zap.Stringer("option_id", m.OptionID), zap.Int64("final", m.Final), zap.Int64("rows", m.Rows))
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
