//go:build integration

package verify_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/verify"
	"github.com/tally-vote/tally/pkg/vote"
)

const shards, buckets = 4, 4

// seedPoll creates a poll with two options.
func seedPoll(t *testing.T, ctx context.Context, polls *cassandra.PollStore) *poll.Poll {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	p := &poll.Poll{ID: id.New(), CreatorID: id.New(), Title: "verify",
		StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
		Options:       []poll.Option{{ID: id.New(), Text: "a"}, {ID: id.New(), Text: "b", DisplayOrder: 1}},
		CounterShards: shards, IndexBuckets: buckets}
	if err := polls.Create(ctx, p); err != nil {
		t.Fatalf("create poll: %v", err)
	}
	return p
}

// writeVote stores a ballot row accepted and written an hour ago and,
// unless told not to, its index row (as the vote path writes it) and
// counter increments.
func writeVote(t *testing.T, ctx context.Context, s gocqlx.Session, votes *cassandra.VoteStore, counters *cassandra.TallyStore,
	p *poll.Poll, opt id.ID, index, count bool) *vote.Ballot {
	t.Helper()
	b := writeRow(t, ctx, s, p, opt, true)
	if index {
		if err := votes.Index(ctx, p.ID, vote.Bucket(b.VoterID, buckets), []*vote.Ballot{b}); err != nil {
			t.Fatalf("index vote: %v", err)
		}
	}
	if count {
		d := tally.Counts{Ballots: 1, Options: map[id.ID]int64{opt: 1}}
		if err := counters.AdjustShard(ctx, p.ID, vote.Shard(b.VoteID, shards), d); err != nil {
			t.Fatalf("count vote: %v", err)
		}
	}
	return b
}

// writeRow stores a ballot row accepted an hour ago, written then (old) or
// now (a backlog applied late, whose follow-ups have not run yet).
func writeRow(t *testing.T, ctx context.Context, s gocqlx.Session, p *poll.Poll, opt id.ID, old bool) *vote.Ballot {
	t.Helper()
	b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), OptionIDs: []id.ID{opt},
		VoteID: id.New(), RequestID: id.New(),
		VotedAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)}
	written := time.Now()
	if old {
		written = b.VotedAt
	}
	err := s.Session.Query(`INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, voted_at)
		VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`, b.PollID, b.VoterID, b.OptionIDs, b.VoteID, b.RequestID, b.VotedAt,
		written.UnixMicro()).WithContext(ctx).Exec()
	if err != nil {
		t.Fatalf("insert vote: %v", err)
	}
	return b
}

// TestVerifyLeavesALateAppliedBacklogAlone: a vote accepted an hour ago
// and applied just now (a backlog drained after an outage) has its row
// written and its follow-ups still to run. verify --repair must take it as
// in flight: before it judged by the accept time, counted and indexed it,
// and the worker's follow-up then counted it a second time.
func TestVerifyLeavesALateAppliedBacklogAlone(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	polls := cassandra.NewPollStore(s, cfg)
	counters := cassandra.NewTallyStore(s)
	p := seedPoll(t, ctx, polls)
	writeRow(t, ctx, s, p, p.Options[0].ID, false)
	deps := verify.Deps{Scan: cassandra.NewVoteSource(s, nil).Scan, Layout: verify.PollLayouts(polls.Get),
		Index: cassandra.NewIndexStore(s), Counters: counters, Finals: counters, Log: testenv.Logger(t), Now: time.Now}
	rep, err := verify.Run(ctx, deps, verify.Options{Splits: 4, Workers: 2, Grace: time.Minute, Repair: true,
		RepairCounters: true})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.IndexInFlight != 1 || rep.IndexRepaired != 0 || rep.IndexMissing != 0 {
		t.Fatalf("a late-applied row: in flight %d, repaired %d, missing %d", rep.IndexInFlight, rep.IndexRepaired,
			rep.IndexMissing)
	}
	c, err := counters.SumShards(ctx, p.ID, shards)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ballots != 0 {
		t.Fatalf("verify counted an in-flight ballot: %+v", c)
	}
}

// TestVerifyRepairsIndexAndCounters breaks a fresh keyspace the ways the
// vote path can leave it after a failed follow-up (index rows missing or
// wrong, counter increments lost or doubled), checks the report, repairs,
// and checks that a second run finds nothing.
func TestVerifyRepairsIndexAndCounters(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	polls := cassandra.NewPollStore(s, cfg)
	votes := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	counters := cassandra.NewTallyStore(s)

	pa, pb := seedPoll(t, ctx, polls), seedPoll(t, ctx, polls)
	a0, a1 := pa.Options[0].ID, pa.Options[1].ID
	for i := range 30 {
		opt := a0
		if i%3 == 0 {
			opt = a1
		}
		writeVote(t, ctx, s, votes, counters, pa, opt, true, true)
	}
	// Three ballots whose follow-ups never ran: no index row, not counted.
	for range 3 {
		writeVote(t, ctx, s, votes, counters, pa, a1, false, false)
	}
	// One index row with another vote's id.
	wrong := writeVote(t, ctx, s, votes, counters, pa, a0, true, true)
	if err := s.Session.Query(`UPDATE votes_by_poll SET vote_id = ? WHERE poll_id = ? AND bucket = ? AND voter_id = ?`,
		id.New(), pa.ID, vote.Bucket(wrong.VoterID, buckets), wrong.VoterID).WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}
	// One correct row written before the frozen options column existed.
	legacy := writeVote(t, ctx, s, votes, counters, pa, a0, false, true)
	if err := s.Session.Query(`INSERT INTO votes_by_poll (poll_id, bucket, voter_id, option_ids, vote_id, voted_at)
		VALUES (?, ?, ?, ?, ?, ?)`, pa.ID, vote.Bucket(legacy.VoterID, buckets), legacy.VoterID, legacy.OptionIDs,
		legacy.VoteID, legacy.VotedAt).WithContext(ctx).Exec(); err != nil {
		t.Fatal(err)
	}
	// Poll b: consistent rows and index, one selection counted twice.
	b0 := pb.Options[0].ID
	for range 10 {
		writeVote(t, ctx, s, votes, counters, pb, b0, true, true)
	}
	if err := counters.AdjustShard(ctx, pb.ID, 2, tally.Counts{Options: map[id.ID]int64{b0: 1}}); err != nil {
		t.Fatal(err)
	}

	deps := verify.Deps{Scan: cassandra.NewVoteSource(s, nil).Scan, Layout: verify.PollLayouts(polls.Get),
		Index: cassandra.NewIndexStore(s), Counters: counters, Finals: counters, Log: testenv.Logger(t), Now: time.Now}
	opts := verify.Options{Splits: 16, Workers: 4, Grace: time.Minute}

	rep, err := verify.Run(ctx, deps, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.RowsScanned != 45 || rep.Polls != 2 || rep.IndexMissing != 3 || rep.IndexMismatched != 1 ||
		rep.IndexRepaired != 0 || rep.Consistent || rep.Remaining() != 6 {
		t.Fatalf("first run: %+v", rep)
	}
	drift := map[id.ID]verify.Drift{}
	for _, d := range rep.CounterDrift {
		drift[d.PollID] = d
	}
	if d := drift[pa.ID]; d.BallotDelta != 3 || d.OptionDeltas[a1] != 3 || len(d.OptionDeltas) != 1 || d.Rows.Ballots != 35 {
		t.Errorf("drift of poll a: %+v", d)
	}
	if d := drift[pb.ID]; d.BallotDelta != 0 || d.OptionDeltas[b0] != -1 || len(d.OptionDeltas) != 1 {
		t.Errorf("drift of poll b: %+v", d)
	}

	// Repairing without counter permission fixes the index, and counts the
	// ballots whose index rows were missing (an index row means counted):
	// poll a's drift is gone, poll b's double count remains.
	opts.Repair = true
	rep, err = verify.Run(ctx, deps, opts)
	if err != nil {
		t.Fatalf("verify --repair: %v", err)
	}
	if rep.IndexRepaired != 4 || rep.CountersRepaired != 0 || len(rep.CounterDrift) != 1 || rep.CounterDrift[0].PollID != pb.ID || rep.Consistent {
		t.Fatalf("repair without --repair-counters: %+v", rep)
	}

	opts.RepairCounters = true
	rep, err = verify.Run(ctx, deps, opts)
	if err != nil {
		t.Fatalf("verify --repair --repair-counters: %v", err)
	}
	if rep.IndexMissing+rep.IndexMismatched != 0 || rep.CountersRepaired != 1 || !rep.Consistent {
		t.Fatalf("repair with --repair-counters: %+v", rep)
	}

	opts.Repair, opts.RepairCounters = false, false
	rep, err = verify.Run(ctx, deps, opts)
	if err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	if !rep.Consistent || rep.IndexMissing+rep.IndexMismatched != 0 || len(rep.CounterDrift) != 0 || rep.RowsScanned != 45 {
		t.Fatalf("after repair: %+v", rep)
	}
	// The reconciliation path, which counts through the index, now agrees
	// with the rows.
	rc, err := counters.CountRows(ctx, pa.ID, count.Plurality, buckets, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := rc.All
	if c.Ballots != 35 || c.Options[a0]+c.Options[a1] != 35 {
		t.Fatalf("index counts after repair: %+v", c)
	}
	sums, err := counters.SumShards(ctx, pa.ID, shards)
	if err != nil {
		t.Fatal(err)
	}
	if !sums.Diff(c).IsZero() {
		t.Fatalf("counters %+v differ from rows %+v", sums, c)
	}

	// --poll: only that poll's rows are checked, and its counters may be
	// repaired without --repair-counters.
	if err := counters.AdjustShard(ctx, pb.ID, 0, tally.Counts{Ballots: 2}); err != nil {
		t.Fatal(err)
	}
	rep, err = verify.Run(ctx, deps, verify.Options{Poll: pb.ID, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsScanned != 45 || rep.RowsChecked != 10 || rep.Polls != 1 || rep.CountersRepaired != 1 || !rep.Consistent {
		t.Fatalf("--poll run: %+v", rep)
	}
}
