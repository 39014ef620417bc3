package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
)

// IndexEntry is one voter's row in the per-poll index votes_by_poll.
type IndexEntry struct {
	VoteID gocql.UUID
	// Options is the frozen options column, or the legacy option_ids list
	// for rows written before that column existed.
	Options []gocql.UUID
	VotedAt time.Time
}

// IndexStore reads and writes single rows of the per-poll vote index, for
// checking and repairing it row by row.
type IndexStore struct {
	s gocqlx.Session
}

// NewIndexStore builds the store.
func NewIndexStore(s gocqlx.Session) *IndexStore { return &IndexStore{s: s} }

const selectIndexEntry = `SELECT vote_id, options, option_ids, voted_at FROM votes_by_poll
	WHERE poll_id = ? AND bucket = ? AND voter_id = ?`

// Get reads a voter's index row; found is false when there is none.
func (st *IndexStore) Get(ctx context.Context, pollID gocql.UUID, bucket int, voterID gocql.UUID) (IndexEntry, bool, error) {
	var (
		e      IndexEntry
		legacy []gocql.UUID
	)
	err := st.s.Session.Query(selectIndexEntry, pollID, bucket, voterID).WithContext(ctx).
		Scan(&e.VoteID, &e.Options, &legacy, &e.VotedAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return IndexEntry{}, false, nil
	}
	if err != nil {
		return IndexEntry{}, false, apperr.Unavailable("read vote index row", err)
	}
	if e.Options == nil {
		e.Options = legacy
	}
	return e, true, nil
}

// Put writes a voter's index row with the statement the vote path uses
// (VoteStore.Index), so a repaired row is indistinguishable from one the
// worker wrote. It sets only the frozen options column; readers prefer it
// over a legacy option_ids list left in the row.
func (st *IndexStore) Put(ctx context.Context, pollID gocql.UUID, bucket int, voterID gocql.UUID, e IndexEntry) error {
	err := st.s.Session.Query(insertVoteIndex, pollID, bucket, voterID, e.Options, e.VoteID, e.VotedAt).
		WithContext(ctx).Exec()
	if err != nil {
		return apperr.Unavailable("write vote index row", err)
	}
	return nil
}
