package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// IndexStore reads and writes single rows of the per-poll vote index, for
// checking and repairing it row by row.
type IndexStore struct {
	s gocqlx.Session
}

// NewIndexStore builds the store.
func NewIndexStore(s gocqlx.Session) *IndexStore { return &IndexStore{s: s} }

// selectIndexEntry reads one voter's index row.
var selectIndexEntry = newStatement(votesByPollTable.Get("vote_id", "options", "option_ids", "voted_at", "flags", "scores", "commitment", "version", "revoked"))

// putChangedEntry writes a changed ballot's entry whole.
var putChangedEntry = newStatement("INSERT INTO votes_by_poll (options, scores, flags, commitment, vote_id, voted_at, version, revoked, poll_id, bucket, voter_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", moveEntryCols)

// Get reads a voter's index row; found is false when there is none.
func (st *IndexStore) Get(ctx context.Context, pollID id.ID, bucket int, voterID id.ID) (vote.IndexEntry, bool, error) {
	var r voteIndexRow
	err := selectIndexEntry.query(ctx, st.s).BindStruct(voteIndexRow{PollID: pollID, Bucket: bucket, VoterID: voterID}).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return vote.IndexEntry{}, false, nil
	}
	if err != nil {
		return vote.IndexEntry{}, false, apperr.Unavailable("read vote index row", err)
	}
	return r.toIndexEntry(), true, nil
}

// Put writes a voter's index row with the statement the vote path uses
// (VoteStore.Index), so a repaired row is indistinguishable from one the
// worker wrote. It sets only the frozen options column; readers prefer it
// over a legacy option_ids list left in the row.
//
// The entry of a changed ballot (a version, or revoked) is written whole,
// with its version, at the current time: the accept-time timestamp of a
// first-cast entry would lose to the entry it repairs.
func (st *IndexStore) Put(ctx context.Context, pollID id.ID, bucket int, voterID id.ID, e vote.IndexEntry) error {
	var err error
	if e.Version > 0 || e.Revoked {
		err = putChangedEntry.query(ctx, st.s).BindMap(map[string]any{
			"options": e.Options, "scores": e.Scores, "flags": e.Flags, "commitment": e.Commitment, "vote_id": e.VoteID, "voted_at": e.VotedAt,
			"version": e.Version, "revoked": e.Revoked, "poll_id": pollID, "bucket": bucket, "voter_id": voterID,
		}).ExecRelease()
		if err != nil {
			return apperr.Unavailable("write vote index row", err)
		}
		return nil
	}
	// A repair replaces what is there (a mismatched entry written at any
	// time), so it is written now, not at the accept time.
	r := toVoteIndexRow(pollID, bucket, voterID, e)
	r.TS = time.Now().UnixMicro()
	err = indexInsert(e.Flags, e.Scores, e.Commitment).query(ctx, st.s).BindStruct(r).ExecRelease()
	if err != nil {
		return apperr.Unavailable("write vote index row", err)
	}
	return nil
}
