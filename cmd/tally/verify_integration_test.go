//go:build integration

package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// verifyReport is the part of `tally verify --json` these tests read,
// decoded on its own so the tests read the CLI's output, not its types.
type verifyReport struct {
	IndexMissing    int64 `json:"index_missing"`
	IndexRepaired   int64 `json:"index_repaired"`
	IndexFrozen     int64 `json:"index_frozen"`
	FinalsChecked   int   `json:"finals_checked"`
	FinalMismatches []struct {
		PollID   id.ID `json:"poll_id"`
		OptionID id.ID `json:"option_id"`
		Final    int64 `json:"final"`
		Rows     int64 `json:"rows"`
	} `json:"final_mismatches"`
	IndexProblems []struct {
		PollID   id.ID  `json:"poll_id"`
		Problem  string `json:"problem"`
		Repaired bool   `json:"repaired"`
		Frozen   bool   `json:"frozen"`
	} `json:"index_problems"`
	CounterDrift []struct {
		PollID   id.ID `json:"poll_id"`
		Repaired bool  `json:"repaired"`
		Frozen   bool  `json:"frozen"`
	} `json:"counter_drift"`
	Consistent bool `json:"consistent"`
}

func runVerifyJSON(t *testing.T, bin string, env []string, args ...string) (verifyReport, int) {
	t.Helper()
	out, code := runTally(t, bin, env, append([]string{"verify", "--json"}, args...)...)
	var rep verifyReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify %v: exit %d, %v: %s", args, code, err, out)
	}
	return rep, code
}

// frozenPollFixture is a closed poll whose ballots were written with their
// follow-ups (row, index row, counter increment) and then frozen by
// `tally reconcile --final`, as the close's reconciliation freezes it.
type frozenPollFixture struct {
	s     gocqlx.Session
	votes *cassandra.VoteStore
	tally *cassandra.TallyStore
	p     *poll.Poll
}

func newFrozenPoll(t *testing.T, ctx context.Context, bin string, env []string, s gocqlx.Session, cfg cassandra.Config) *frozenPollFixture {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	p := &poll.Poll{ID: id.New(), CreatorID: id.New(), Title: "frozen",
		StartTime: now.Add(-2 * time.Hour), EndTime: now.Add(-time.Hour), CreatedAt: now.Add(-2 * time.Hour), UpdatedAt: now,
		Options:       []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b"}},
		CounterShards: 4, IndexBuckets: 4}
	if err := cassandra.NewPollStore(s, cfg).Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	f := &frozenPollFixture{s: s, votes: cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry()),
		tally: cassandra.NewTallyStore(s), p: p}
	f.ballot(t, ctx, p.Options[0].ID, true, true)
	f.ballot(t, ctx, p.Options[0].ID, true, true)
	f.ballot(t, ctx, p.Options[1].ID, true, true)
	out, code := runTally(t, bin, env, "reconcile", "--poll", p.ID.String(), "--final")
	var rep struct{ Final bool }
	if err := json.Unmarshal(out, &rep); err != nil || code != 0 || !rep.Final {
		t.Fatalf("reconcile --final: exit %d, %v: %s", code, err, out)
	}
	final, found, err := f.tally.LoadFinal(ctx, p.ID)
	if err != nil || !found || final.Counts.Ballots != 3 {
		t.Fatalf("final tally %+v found %v: %v", final, found, err)
	}
	return f
}

// ballot writes a vote row of the poll, with its index row and counter
// increment when asked, as a late writer would.
func (f *frozenPollFixture) ballot(t *testing.T, ctx context.Context, opt id.ID, index, count bool) *vote.Ballot {
	t.Helper()
	b := &vote.Ballot{PollID: f.p.ID, VoterID: id.New(), OptionIDs: []id.ID{opt}, VoteID: id.New(),
		RequestID: id.New(), VotedAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)}
	// Written when it was accepted: verify judges "in flight" by the
	// row's write time.
	if err := f.s.Session.Query(`INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, voted_at)
		VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`, b.PollID, b.VoterID, b.OptionIDs, b.VoteID, b.RequestID, b.VotedAt,
		b.VotedAt.UnixMicro()).
		WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}
	if index {
		if err := f.votes.Index(ctx, f.p.ID, vote.Bucket(b.VoterID, f.p.IndexBuckets), []*vote.Ballot{b}); err != nil {
			t.Fatal(err)
		}
	}
	if count {
		d := tally.Counts{Ballots: 1, Options: map[id.ID]int64{opt: 1}}
		if err := f.tally.AdjustShard(ctx, f.p.ID, vote.Shard(b.VoteID, f.p.CounterShards), d); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestVerifyFinalTally: `tally verify` compares every frozen final tally
// with its poll's rows. A row written after the freeze, with its index row
// and counter increment (so index and counters agree with the rows), leaves
// final_tallies one ballot short: verify lists the difference and exits 1.
func TestVerifyFinalTally(t *testing.T) {
	r := newCLIRig(t)
	cfg, env, bin, ctx, s := r.cfg, r.env, r.bin, r.ctx, r.s

	f := newFrozenPoll(t, ctx, bin, env, s, cfg.Cassandra)
	pid := f.p.ID.String()
	if rep, code := runVerifyJSON(t, bin, env); code != 0 || !rep.Consistent || len(rep.FinalMismatches) != 0 {
		t.Fatalf("frozen and consistent: exit %d, %+v", code, rep)
	}

	late := f.p.Options[1].ID
	f.ballot(t, ctx, late, true, true)
	for _, args := range [][]string{nil, {"--poll", pid}} {
		rep, code := runVerifyJSON(t, bin, env, args...)
		want := map[id.ID][2]int64{tally.BallotKey: {3, 4}, late: {1, 2}}
		got := map[id.ID][2]int64{}
		for _, m := range rep.FinalMismatches {
			if m.PollID == f.p.ID {
				got[m.OptionID] = [2]int64{m.Final, m.Rows}
			}
		}
		if code != 1 || rep.Consistent || len(got) != 2 || got[tally.BallotKey] != want[tally.BallotKey] || got[late] != want[late] {
			t.Fatalf("verify %v after a late row: exit %d, mismatches %v, want exit 1 and %v; report %+v", args, code, got, want, rep)
		}
	}
	// Another poll checked alone does not see this poll's final tally.
	other := newFrozenPoll(t, ctx, bin, env, s, cfg.Cassandra)
	if rep, code := runVerifyJSON(t, bin, env, "--poll", other.p.ID.String()); code != 0 || !rep.Consistent || rep.FinalsChecked != 1 {
		t.Fatalf("verify --poll of a consistent frozen poll: exit %d, %+v", code, rep)
	}
}

// TestVerifyRepairFrozenPoll: `tally verify --repair` writes nothing to a
// poll whose final tally is frozen. A row that arrived after the freeze
// without its follow-ups (no index row, no counter increment) stays
// unindexed and uncounted; verify reports it as frozen and exits 1.
func TestVerifyRepairFrozenPoll(t *testing.T) {
	r := newCLIRig(t)
	cfg, env, bin, ctx, s := r.cfg, r.env, r.bin, r.ctx, r.s

	f := newFrozenPoll(t, ctx, bin, env, s, cfg.Cassandra)
	before, err := f.tally.SumShards(ctx, f.p.ID, f.p.CounterShards)
	if err != nil {
		t.Fatal(err)
	}
	late := f.ballot(t, ctx, f.p.Options[1].ID, false, false)
	for _, args := range [][]string{{"--repair", "--poll", f.p.ID.String()}, {"--repair", "--repair-counters"}} {
		rep, code := runVerifyJSON(t, bin, env, args...)
		indexed, err := f.votes.Indexed(ctx, late, vote.Bucket(late.VoterID, f.p.IndexBuckets))
		if err != nil {
			t.Fatal(err)
		}
		after, err := f.tally.SumShards(ctx, f.p.ID, f.p.CounterShards)
		if err != nil {
			t.Fatal(err)
		}
		if indexed || !after.Diff(before).IsZero() {
			t.Fatalf("verify %v wrote to a frozen poll: index row written %v, counters %+v -> %+v (exit %d, %+v)",
				args, indexed, before, after, code, rep)
		}
		if code != 1 || rep.Consistent || rep.IndexMissing != 1 || rep.IndexFrozen != 1 || rep.IndexRepaired != 0 ||
			len(rep.IndexProblems) != 1 || !rep.IndexProblems[0].Frozen || len(rep.CounterDrift) != 1 ||
			rep.CounterDrift[0].Repaired || len(rep.FinalMismatches) != 2 {
			t.Fatalf("verify %v on a frozen poll: exit %d, %+v", args, code, rep)
		}
	}
}
