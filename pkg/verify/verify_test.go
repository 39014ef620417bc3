package verify_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/verify"
	"github.com/tally-vote/tally/pkg/vote"
)

type indexKey struct {
	poll   id.ID
	bucket int
	voter  id.ID
}

// store fakes the votes table, the index and the counters in memory.
type store struct {
	mu       sync.Mutex
	rows     []vote.Ballot
	index    map[indexKey]vote.IndexEntry
	counters map[id.ID]tally.Counts // all shards summed; AdjustShard adds to it
	layouts  map[id.ID]verify.Layout
	finals   map[id.ID]tally.Counts // frozen final tallies
	puts     int
}

func newStore() *store {
	return &store{index: map[indexKey]vote.IndexEntry{}, counters: map[id.ID]tally.Counts{},
		layouts: map[id.ID]verify.Layout{}, finals: map[id.ID]tally.Counts{}}
}

func (s *store) LoadFinal(_ context.Context, p id.ID) (tally.Frozen, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.finals[p]
	return tally.Frozen{Counts: c}, ok, nil
}

func (s *store) FinalPolls(context.Context) ([]id.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]id.ID, 0, len(s.finals))
	for p := range s.finals {
		ids = append(ids, p)
	}
	return ids, nil
}

// freeze freezes p's final tally at what its rows add up to now.
func (s *store) freeze(p id.ID) {
	c := tally.NewCounts()
	for _, r := range s.rows {
		if r.PollID == p {
			c.Add(r.OptionIDs)
		}
	}
	s.finals[p] = c
}

// scan hands rows to fn from several goroutines, like ScanVotes.
func (s *store) scan(ctx context.Context, _ scan.Options, fn func(vote.Ballot) error) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, r := range s.rows {
		g.Go(func() error { return fn(r) })
	}
	return g.Wait()
}

func (s *store) layout(_ context.Context, id id.ID) (verify.Layout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.layouts[id]
	if !ok {
		return l, verify.ErrUnknownPoll
	}
	return l, nil
}

func (s *store) Get(_ context.Context, p id.ID, b int, v id.ID) (vote.IndexEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[indexKey{p, b, v}]
	return e, ok, nil
}

func (s *store) Put(_ context.Context, p id.ID, b int, v id.ID, e vote.IndexEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index[indexKey{p, b, v}] = e
	s.puts++
	return nil
}

func (s *store) SumShards(_ context.Context, p id.ID, _ int) (tally.Counts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := tally.NewCounts()
	c.Ballots = s.counters[p].Ballots
	for k, v := range s.counters[p].Options {
		c.Options[k] = v
	}
	return c, nil
}

func (s *store) AdjustShard(_ context.Context, p id.ID, _ int, d tally.Counts) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[p]
	if !ok {
		c = tally.NewCounts()
	}
	c.Ballots += d.Ballots
	for k, v := range d.Options {
		c.Options[k] += v
	}
	s.counters[p] = c
	return nil
}

// vote adds a row with a correct index row and counters.
func (s *store) vote(p id.ID, at time.Time, opts ...id.ID) vote.Ballot {
	r := vote.Ballot{PollID: p, VoterID: id.New(), VoteID: id.New(),
		RequestID: id.New(), OptionIDs: opts, VotedAt: at}
	s.rows = append(s.rows, r)
	s.index[indexKey{p, vote.Bucket(r.VoterID, s.layouts[p].IndexBuckets), r.VoterID}] =
		vote.IndexEntry{VoteID: r.VoteID, Options: opts, VotedAt: at}
	_ = s.AdjustShard(context.Background(), p, 0, tally.Counts{Ballots: 1, Options: ones(opts)})
	return r
}

func ones(opts []id.ID) map[id.ID]int64 {
	m := map[id.ID]int64{}
	for _, o := range opts {
		m[o]++
	}
	return m
}

func (s *store) key(r vote.Ballot) indexKey {
	return indexKey{r.PollID, vote.Bucket(r.VoterID, s.layouts[r.PollID].IndexBuckets), r.VoterID}
}

func TestRun(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)
	optA, optB := id.New(), id.New()

	type want struct {
		missing, mismatched, inFlight, repaired int64
		drift, countersRepaired                 int
		unknown                                 int
		finalMismatches                         int
		consistent                              bool
	}
	// broken builds two polls: p1 with one missing and one wrong index row
	// and a lost counter increment, p2 correct but for one counter too many.
	broken := func() (*store, id.ID, id.ID) {
		s := newStore()
		p1, p2 := id.New(), id.New()
		s.layouts[p1] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
		s.layouts[p2] = verify.Layout{IndexBuckets: 8, CounterShards: 2}
		for range 5 {
			s.vote(p1, old, optA)
			s.vote(p2, old, optA, optB)
		}
		lost := s.vote(p1, old, optB)
		delete(s.index, s.key(lost))
		_ = s.AdjustShard(context.Background(), p1, 0, tally.Counts{Ballots: -1, Options: map[id.ID]int64{optB: -1}})
		wrong := s.vote(p1, old, optA)
		s.index[s.key(wrong)] = vote.IndexEntry{VoteID: wrong.VoteID, Options: []id.ID{optA, optA}}
		_ = s.AdjustShard(context.Background(), p2, 1, tally.Counts{Options: map[id.ID]int64{optB: 1}})
		return s, p1, p2
	}

	for _, tc := range []struct {
		name  string
		setup func() (*store, verify.Options)
		want  want
	}{
		{"consistent", func() (*store, verify.Options) {
			s := newStore()
			p := id.New()
			s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
			for range 10 {
				s.vote(p, old, optA)
			}
			return s, verify.Options{}
		}, want{consistent: true}},
		{"report only", func() (*store, verify.Options) {
			s, _, _ := broken()
			return s, verify.Options{}
		}, want{missing: 1, mismatched: 1, drift: 2}},
		{"repair without counter permission", func() (*store, verify.Options) {
			s, _, _ := broken()
			return s, verify.Options{Repair: true}
		}, want{missing: 1, mismatched: 1, repaired: 2, drift: 1}}, // a repaired missing row is counted too
		{"repair all", func() (*store, verify.Options) {
			s, _, _ := broken()
			return s, verify.Options{Repair: true, RepairCounters: true}
		}, want{missing: 1, mismatched: 1, repaired: 2, drift: 1, countersRepaired: 1, consistent: true}},
		{"repair one poll", func() (*store, verify.Options) {
			s, _, p2 := broken()
			return s, verify.Options{Repair: true, Poll: p2}
		}, want{drift: 1, countersRepaired: 1, consistent: true}},
		{"young rows are in flight", func() (*store, verify.Options) {
			s := newStore()
			p := id.New()
			s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
			r := s.vote(p, now.Add(-time.Second), optA)
			delete(s.index, s.key(r))
			return s, verify.Options{Repair: true, Grace: time.Minute}
		}, want{inFlight: 1, consistent: true}},
		{"an index row without the row's receipt commitment", func() (*store, verify.Options) {
			s := newStore()
			p := id.New()
			s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
			s.vote(p, old, optA)
			s.vote(p, old, optB)
			// The row carries a commitment its index row lacks: the ledger,
			// built through the index, would miss it. Repair copies it.
			s.rows[len(s.rows)-1].Commitment = bytes.Repeat([]byte{1}, 32)
			return s, verify.Options{Repair: true}
		}, want{mismatched: 1, repaired: 1, consistent: true}},
		{"unknown poll", func() (*store, verify.Options) {
			s := newStore()
			s.rows = append(s.rows, vote.Ballot{PollID: id.New(), VoterID: id.New(),
				OptionIDs: []id.ID{optA}})
			return s, verify.Options{Repair: true, RepairCounters: true}
		}, want{unknown: 1}},
		{"frozen final equal to the rows", func() (*store, verify.Options) {
			s := newStore()
			p := id.New()
			s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
			s.vote(p, old, optA)
			s.vote(p, old, optB)
			s.freeze(p)
			return s, verify.Options{}
		}, want{consistent: true}},
		{"a row written after the freeze", func() (*store, verify.Options) {
			s := newStore()
			p := id.New()
			s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
			s.vote(p, old, optA)
			s.freeze(p)
			s.vote(p, old, optB) // indexed and counted: only the final differs
			return s, verify.Options{Repair: true, RepairCounters: true}
		}, want{finalMismatches: 2}}, // ballots and optB
		{"frozen poll without rows", func() (*store, verify.Options) {
			s := newStore()
			s.finals[id.New()] = tally.Counts{Ballots: 1, Options: map[id.ID]int64{optA: 1}}
			return s, verify.Options{}
		}, want{finalMismatches: 2}},
		{"another poll's final is out of scope", func() (*store, verify.Options) {
			s := newStore()
			s.finals[id.New()] = tally.Counts{Ballots: 1, Options: map[id.ID]int64{optA: 1}}
			return s, verify.Options{Poll: id.New()}
		}, want{consistent: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, o := tc.setup()
			deps := verify.Deps{Scan: s.scan, Layout: s.layout, Index: s, Counters: s, Finals: s, Log: zap.NewNop(),
				Now: func() time.Time { return now }}
			rep, err := verify.Run(context.Background(), deps, o)
			if err != nil {
				t.Fatal(err)
			}
			got := want{rep.IndexMissing, rep.IndexMismatched, rep.IndexInFlight, rep.IndexRepaired,
				len(rep.CounterDrift), rep.CountersRepaired, len(rep.UnknownPolls), len(rep.FinalMismatches), rep.Consistent}
			if got != tc.want {
				t.Fatalf("report %+v\n got %+v\nwant %+v", rep, got, tc.want)
			}
			if rep.RowsScanned != int64(len(s.rows)) {
				t.Errorf("rows_scanned %d, want %d", rep.RowsScanned, len(s.rows))
			}
			if int64(len(rep.IndexProblems)) != rep.IndexMissing+rep.IndexMismatched {
				t.Errorf("%d index problems listed, want %d", len(rep.IndexProblems), rep.IndexMissing+rep.IndexMismatched)
			}
			// A repairing run leaves what it repaired clean for the next one.
			if o.Repair {
				o.Repair = false
				again, err := verify.Run(context.Background(), deps, o)
				if err != nil {
					t.Fatal(err)
				}
				if again.IndexMissing+again.IndexMismatched != 0 ||
					int64(len(again.CounterDrift)) != int64(len(rep.CounterDrift)-rep.CountersRepaired) {
					t.Fatalf("second run after repair: %+v", again)
				}
			}
		})
	}
}

func TestRunDriftDeltas(t *testing.T) {
	s := newStore()
	p := id.New()
	optA, optB := id.New(), id.New()
	s.layouts[p] = verify.Layout{IndexBuckets: 2, CounterShards: 2}
	s.vote(p, time.Time{}, optA)
	s.vote(p, time.Time{}, optA, optB)
	// Counters: one ballot and one optA lost, two optB too many.
	_ = s.AdjustShard(context.Background(), p, 1, tally.Counts{Ballots: -1,
		Options: map[id.ID]int64{optA: -1, optB: 2}})
	rep, err := verify.Run(context.Background(), verify.Deps{Scan: s.scan, Layout: s.layout, Index: s,
		Counters: s, Finals: s, Log: zap.NewNop(), Now: time.Now}, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.CounterDrift) != 1 {
		t.Fatalf("drift %+v", rep.CounterDrift)
	}
	d := rep.CounterDrift[0]
	if d.BallotDelta != 1 || d.OptionDeltas[optA] != 1 || d.OptionDeltas[optB] != -2 || len(d.OptionDeltas) != 2 {
		t.Fatalf("deltas: ballots %d options %v", d.BallotDelta, d.OptionDeltas)
	}
	if d.Rows.Ballots != 2 || d.Counters.Ballots != 1 {
		t.Fatalf("rows %+v counters %+v", d.Rows, d.Counters)
	}
}

// TestRunFrozenPoll: --repair writes nothing to a poll whose final tally is
// frozen, neither an index row nor a counter adjustment; it reports the
// problems as frozen and leaves them remaining.
func TestRunFrozenPoll(t *testing.T) {
	optA := id.New()
	s := newStore()
	p := id.New()
	s.layouts[p] = verify.Layout{IndexBuckets: 4, CounterShards: 4}
	s.vote(p, time.Now().Add(-time.Hour), optA)
	s.freeze(p)
	lost := s.vote(p, time.Now().Add(-time.Hour), optA)
	delete(s.index, s.key(lost))
	_ = s.AdjustShard(context.Background(), p, 0, tally.Counts{Ballots: -1, Options: map[id.ID]int64{optA: -1}})
	before, _ := s.SumShards(context.Background(), p, 4)
	for _, o := range []verify.Options{{Repair: true, RepairCounters: true}, {Repair: true, Poll: p}} {
		rep, err := verify.Run(context.Background(), verify.Deps{Scan: s.scan, Layout: s.layout, Index: s,
			Counters: s, Finals: s, Log: zap.NewNop(), Now: time.Now}, o)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := s.SumShards(context.Background(), p, 4)
		if s.puts != 0 || !after.Diff(before).IsZero() {
			t.Fatalf("%+v wrote to a frozen poll: %d index puts, counters %+v -> %+v", o, s.puts, before, after)
		}
		if rep.IndexMissing != 1 || rep.IndexFrozen != 1 || rep.IndexRepaired != 0 || len(rep.IndexProblems) != 1 ||
			!rep.IndexProblems[0].Frozen || len(rep.CounterDrift) != 1 || !rep.CounterDrift[0].Frozen ||
			rep.CounterDrift[0].Repaired || rep.CountersRepaired != 0 || len(rep.FinalMismatches) != 2 ||
			rep.Consistent || rep.Remaining() == 0 {
			t.Fatalf("%+v: report %+v", o, rep)
		}
	}
}
