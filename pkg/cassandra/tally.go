package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/tally"
)

// TallyStore implements tally.Store.
type TallyStore struct {
	s gocqlx.Session
}

// NewTallyStore builds the store.
func NewTallyStore(s gocqlx.Session) *TallyStore { return &TallyStore{s: s} }

const incrCounter = `UPDATE vote_counts SET votes = votes + ? WHERE poll_id = ? AND shard = ? AND option_id = ?`

// AdjustShard adds delta to one shard as one single-partition counter batch.
func (st *TallyStore) AdjustShard(ctx context.Context, pollID gocql.UUID, shard int, delta tally.Counts) error {
	b := st.s.Session.NewBatch(gocql.CounterBatch).WithContext(ctx)
	if delta.Ballots != 0 {
		b.Query(incrCounter, delta.Ballots, pollID, shard, tally.BallotKey)
	}
	for opt, n := range delta.Options {
		if n != 0 {
			b.Query(incrCounter, n, pollID, shard, opt)
		}
	}
	if b.Size() == 0 {
		return nil
	}
	if err := st.s.Session.ExecuteBatch(b); err != nil {
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
func (st *TallyStore) SumShards(ctx context.Context, pollID gocql.UUID, shards int) (tally.Counts, error) {
	c := tally.NewCounts()
	iter := st.s.Session.Query(`SELECT option_id, votes FROM vote_counts WHERE poll_id = ? AND shard IN ?`,
		pollID, shardList(shards)).WithContext(ctx).Iter()
	var (
		opt gocql.UUID
		n   int64
	)
	for iter.Scan(&opt, &n) {
		if opt == tally.BallotKey {
			c.Ballots += n
		} else {
			c.Options[opt] += n
		}
	}
	if err := iter.Close(); err != nil {
		return tally.Counts{}, apperr.Unavailable("sum counter shards", err)
	}
	return c, nil
}

// CountRows counts ballots bucket by bucket through the per-poll index,
// paging through each bucket partition.
func (st *TallyStore) CountRows(ctx context.Context, pollID gocql.UUID, buckets int, progress func(done, total int, ballots int64)) (tally.Counts, error) {
	c := tally.NewCounts()
	for _, b := range shardList(buckets) {
		iter := st.s.Session.Query(`SELECT options, option_ids FROM votes_by_poll WHERE poll_id = ? AND bucket = ?`,
			pollID, b).WithContext(ctx).PageSize(5000).Iter()
		var opts, legacy []gocql.UUID
		for iter.Scan(&opts, &legacy) {
			if opts == nil {
				opts = legacy
			}
			c.Add(opts)
			opts, legacy = nil, nil
		}
		if err := iter.Close(); err != nil {
			return tally.Counts{}, apperr.Unavailable("count vote rows", err)
		}
		if progress != nil {
			progress(b+1, len(shardList(buckets)), c.Ballots)
		}
	}
	return c, nil
}

// AnyRow looks for one ballot row.
func (st *TallyStore) AnyRow(ctx context.Context, pollID gocql.UUID, buckets int) (bool, error) {
	var voter gocql.UUID
	err := st.s.Session.Query(`SELECT voter_id FROM votes_by_poll WHERE poll_id = ? AND bucket IN ? LIMIT 1`,
		pollID, shardList(buckets)).WithContext(ctx).Scan(&voter)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, apperr.Unavailable("look for vote rows", err)
	}
	return true, nil
}

// SaveFinal freezes the final tally with one conditional single-partition
// batch: the static row IF NOT EXISTS plus the option rows, all or nothing.
// When a final tally exists already it is returned unchanged.
func (st *TallyStore) SaveFinal(ctx context.Context, pollID gocql.UUID, c tally.Counts, asOf time.Time) (tally.Frozen, error) {
	b := st.s.Session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	b.Query(`INSERT INTO final_tallies (poll_id, ballots, as_of) VALUES (?, ?, ?) IF NOT EXISTS`, pollID, c.Ballots, asOf)
	for opt, n := range c.Options {
		b.Query(`INSERT INTO final_tallies (poll_id, option_id, votes) VALUES (?, ?, ?)`, pollID, opt, n)
	}
	applied, iter, err := st.s.Session.ExecuteBatchCAS(b)
	if iter != nil {
		_ = iter.Close()
	}
	if err != nil {
		return tally.Frozen{}, apperr.Unavailable("freeze final tally", err)
	}
	if applied {
		return tally.Frozen{Counts: c, AsOf: asOf}, nil
	}
	f, _, err := st.LoadFinal(ctx, pollID)
	return f, err
}

// LoadFinal reads the frozen final tally.
func (st *TallyStore) LoadFinal(ctx context.Context, pollID gocql.UUID) (tally.Frozen, bool, error) {
	f := tally.Frozen{Counts: tally.NewCounts()}
	iter := st.s.Session.Query(`SELECT option_id, votes, ballots, as_of FROM final_tallies WHERE poll_id = ?`,
		pollID).WithContext(ctx).Iter()
	var (
		opt     *gocql.UUID
		n       *int64
		ballots int64
		asOf    time.Time
		found   bool
	)
	for iter.Scan(&opt, &n, &ballots, &asOf) {
		found = true
		f.Counts.Ballots, f.AsOf = ballots, asOf
		if opt != nil && n != nil {
			f.Counts.Options[*opt] = *n
		}
	}
	if err := iter.Close(); err != nil {
		return f, false, apperr.Unavailable("load final tally", err)
	}
	return f, found, nil
}
