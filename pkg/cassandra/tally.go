package cassandra

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
)

// TallyStore implements tally.Store.
type TallyStore struct {
	s gocqlx.Session
}

// NewTallyStore builds the store.
func NewTallyStore(s gocqlx.Session) *TallyStore { return &TallyStore{s: s} }

var (
	// incrCounter adds to one counter shard: votes = votes + ?.
	incrCounter = newStatement(qb.Update(voteCountsTable.Name()).Add("votes").
			Where(voteCountsTable.PrimaryKeyCmp()...).ToCql())
	sumShards = newStatement(qb.Select(voteCountsTable.Name()).Columns("option_id", "votes").
			Where(qb.Eq("poll_id"), qb.In("shard")).ToCql())
	countRows = newStatement(votesByPollTable.Select("options", "option_ids", "flags", "scores", "revoked"))
	anyRow    = newStatement(qb.Select(votesByPollTable.Name()).Columns("voter_id").
			Where(qb.Eq("poll_id"), qb.In("bucket")).Limit(1).ToCql())
	insertFinalStatics = newStatement(qb.Insert(finalTalliesTable.Name()).
				Columns("poll_id", "ballots", "as_of", "audit_seq", "audit_hash", "drift",
			"ledger_root", "ledger_size", "ledger_kid", "ledger_sig", "ledger_uncommitted").Unique().ToCql())
	insertFinalOption = newStatement(qb.Insert(finalTalliesTable.Name()).
				Columns("poll_id", "option_id", "votes").ToCql())
	selectFinal = newStatement(finalTalliesTable.Select("option_id", "votes", "ballots", "as_of", "audit_seq", "audit_hash", "drift",
		"ledger_root", "ledger_size", "ledger_kid", "ledger_sig", "ledger_uncommitted"))
)

// AdjustShard adds delta to one shard as one single-partition counter batch.
func (st *TallyStore) AdjustShard(ctx context.Context, pollID id.ID, shard int, delta tally.Counts) error {
	b := newBatch(ctx, st.s, gocql.CounterBatch)
	if delta.Ballots != 0 {
		b.add(incrCounter, voteCountRow{PollID: pollID, Shard: shard, OptionID: tally.BallotKey, Votes: delta.Ballots})
	}
	for opt, n := range delta.Options {
		if n != 0 {
			b.add(incrCounter, voteCountRow{PollID: pollID, Shard: shard, OptionID: opt, Votes: n})
		}
	}
	if b.err == nil && b.Size() == 0 {
		return nil
	}
	if err := b.exec(st.s); err != nil {
		return apperr.Unavailable("increment counters", err)
	}
	return nil
}

func shardList(n int) []int {
	l := make([]int, max(n, 1))
	for i := range l {
		l[i] = i
	}
	return l
}

// SumShards reads all shards in one multi-partition query and sums them.
func (st *TallyStore) SumShards(ctx context.Context, pollID id.ID, shards int) (tally.Counts, error) {
	c := tally.NewCounts()
	iter := sumShards.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID, "shard": shardList(shards)}).Iter()
	var r voteCountRow
	for iter.StructScan(&r) {
		r.addTo(&c)
	}
	if err := iter.Close(); err != nil {
		return tally.Counts{}, apperr.Unavailable("sum counter shards", err)
	}
	return c, nil
}

// CountRows counts ballots bucket by bucket through the per-poll index
// (each adding what tally.Tallied says under m),
// paging through each bucket partition, with and without the flagged ones
// (the index row repeats the ballot's flags).
func (st *TallyStore) CountRows(ctx context.Context, pollID id.ID, m count.Method, buckets int, progress func(done, total int, ballots int64)) (tally.RowCounts, error) {
	c := tally.NewRowCounts()
	for _, b := range shardList(buckets) {
		iter := countRows.query(ctx, st.s).BindStruct(voteIndexRow{PollID: pollID, Bucket: b}).PageSize(5000).Iter()
		var r voteIndexRow
		for iter.StructScan(&r) {
			// A revoked ballot's entry stays (so no replay counts it
			// again) and counts nothing.
			if !r.revoked() {
				c.AddBallot(m, r.choices(), r.Scores, r.Flags)
			}
			r = voteIndexRow{}
		}
		if err := iter.Close(); err != nil {
			return tally.RowCounts{}, apperr.Unavailable("count vote rows", err)
		}
		if progress != nil {
			progress(b+1, len(shardList(buckets)), c.All.Ballots)
		}
	}
	return c, nil
}

// Ballots reads every ballot's options and scores through the per-poll index, bucket
// by bucket, each in the order the voter gave them (the index keeps the
// row's list as it is).
func (st *TallyStore) Ballots(ctx context.Context, pollID id.ID, buckets int) ([][]id.ID, [][]int, error) {
	var (
		out    [][]id.ID
		scores [][]int
	)
	for _, b := range shardList(buckets) {
		iter := countRows.query(ctx, st.s).BindStruct(voteIndexRow{PollID: pollID, Bucket: b}).PageSize(5000).Iter()
		var r voteIndexRow
		for iter.StructScan(&r) {
			if !r.revoked() {
				out = append(out, r.choices())
				scores = append(scores, r.Scores)
			}
			r = voteIndexRow{}
		}
		if err := iter.Close(); err != nil {
			return nil, nil, apperr.Unavailable("read ballots", err)
		}
	}
	return out, scores, nil
}

// AnyRow looks for one ballot row.
func (st *TallyStore) AnyRow(ctx context.Context, pollID id.ID, buckets int) (bool, error) {
	var voter id.ID
	err := anyRow.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID, "bucket": shardList(buckets)}).GetRelease(&voter)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, apperr.Unavailable("look for vote rows", err)
	}
	return true, nil
}

// SaveFinal freezes the final tally with one conditional single-partition
// batch: the static row IF NOT EXISTS (with the audit anchor and the
// signed ledger head, so the root is written once) plus the
// option rows, all or nothing. When a final tally exists already it is
// returned unchanged.
func (st *TallyStore) SaveFinal(ctx context.Context, pollID id.ID, f tally.Frozen) (tally.Frozen, error) {
	c := f.Counts
	statics := finalTallyRow{PollID: pollID, Ballots: c.Ballots, AsOf: f.AsOf}
	if f.Audit != nil {
		statics.AuditSeq, statics.AuditHash = &f.Audit.Seq, f.Audit.Hash
	}
	if f.Drift != nil {
		b, err := json.Marshal(f.Drift)
		if err != nil {
			return tally.Frozen{}, err
		}
		s := string(b)
		statics.Drift = &s
	}
	if h := f.Ledger; h != nil {
		size, unc := int64(h.Size), h.Uncommitted
		statics.LedgerRoot, statics.LedgerSize, statics.LedgerKID, statics.LedgerSig = h.Root[:], &size, &h.KeyID, h.Sig
		statics.LedgerUncommitted = &unc
	}
	b := newBatch(ctx, st.s, gocql.UnloggedBatch)
	b.add(insertFinalStatics, statics)
	for opt, n := range c.Options {
		b.add(insertFinalOption, finalTallyRow{PollID: pollID, OptionID: &opt, Votes: &n})
	}
	applied, err := b.execCAS(st.s)
	if err != nil {
		return tally.Frozen{}, apperr.Unavailable("freeze final tally", err)
	}
	if applied {
		return f, nil
	}
	frozen, _, err := st.LoadFinal(ctx, pollID)
	return frozen, err
}

// LoadFinal reads the frozen final tally.
func (st *TallyStore) LoadFinal(ctx context.Context, pollID id.ID) (tally.Frozen, bool, error) {
	f := tally.Frozen{Counts: tally.NewCounts()}
	iter := selectFinal.query(ctx, st.s).BindStruct(finalTallyRow{PollID: pollID}).Iter()
	var (
		r     finalTallyRow
		found bool
	)
	for iter.StructScan(&r) {
		found = true
		r.addTo(&f)
		r = finalTallyRow{}
	}
	if err := iter.Close(); err != nil {
		return f, false, apperr.Unavailable("load final tally", err)
	}
	return f, found, nil
}

// finalPolls lists the partitions of final_tallies, one per frozen poll.
var finalPolls = newStatement(qb.Select(finalTalliesTable.Name()).Distinct("poll_id").ToCql())

// FinalPolls lists every poll with a frozen final tally, paging through
// the partitions of final_tallies (one small partition per closed poll).
func (st *TallyStore) FinalPolls(ctx context.Context) ([]id.ID, error) {
	var (
		ids []id.ID
		pid id.ID
	)
	iter := finalPolls.query(ctx, st.s).PageSize(5000).Iter()
	for iter.Scan(&pid) {
		ids = append(ids, pid)
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("list final tallies", err)
	}
	return ids, nil
}
