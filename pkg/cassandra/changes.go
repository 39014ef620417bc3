package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/vote"
)

// The conditional writes of a change (vote.ChangeStore). A version of 0 is
// a null column (a ballot as first cast, an entry that counted it), so each
// condition has a variant for it.
var (
	changeVoteCols  = []string{"option_ids", "scores", "flags", "commitment", "revoked", "version", "changed_at", "request", "outcome", "poll_id", "voter_id"}
	changeVoteSet   = "UPDATE votes SET option_ids = ?, scores = ?, flags = ?, commitment = ?, revoked = ?, version = ?, changed_at = ?, change_requests[?] = ? WHERE poll_id = ? AND voter_id = ? "
	changeVote      = newStatement(changeVoteSet+"IF version = ?", append(changeVoteCols[:len(changeVoteCols):len(changeVoteCols)], "from"))
	changeFirstVote = newStatement(changeVoteSet+"IF version = null", changeVoteCols)

	moveEntryCols  = []string{"options", "scores", "flags", "commitment", "vote_id", "voted_at", "version", "revoked", "poll_id", "bucket", "voter_id"}
	moveEntrySet   = "UPDATE votes_by_poll SET options = ?, scores = ?, flags = ?, commitment = ?, vote_id = ?, voted_at = ?, version = ?, revoked = ? WHERE poll_id = ? AND bucket = ? AND voter_id = ? "
	moveEntry      = newStatement(moveEntrySet+"IF version = ?", append(moveEntryCols[:len(moveEntryCols):len(moveEntryCols)], "from"))
	moveFirstEntry = newStatement(moveEntrySet+"IF version = null", moveEntryCols)
	insertEntry    = newStatement("INSERT INTO votes_by_poll (options, scores, flags, commitment, vote_id, voted_at, version, revoked, poll_id, bucket, voter_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS", moveEntryCols)
	selectEntry    = newStatement(votesByPollTable.Get("vote_id", "options", "option_ids", "voted_at", "flags", "scores", "commitment", "version", "revoked"))
)

// Change writes b, the next version of the voter's ballot, if the row is
// still at version from, and records requestID's outcome in the same
// write. An unknown outcome is settled by a serial read: the request id in
// the row says this write applied.
func (st *VoteStore) Change(ctx context.Context, b *vote.Ballot, from int, requestID id.ID, o vote.ChangeOutcome) (bool, *vote.Ballot, error) {
	vals := map[string]any{
		"option_ids": b.OptionIDs, "scores": b.Scores, "flags": b.Flags, "commitment": b.Commitment, "revoked": b.Revoked, "version": b.Version,
		"changed_at": b.ChangedAt, "request": gocql.UUID(requestID), "outcome": o.String(),
		"poll_id": b.PollID, "voter_id": b.VoterID, "from": from,
	}
	stmt := changeVote
	if from == 0 {
		stmt = changeFirstVote
	}
	key := voteRow{PollID: b.PollID, VoterID: b.VoterID}
	var lastErr error
	for attempt := range maxLWTAttempts {
		applied, existing, err := execCAS(stmt.query(ctx, st.s).BindMap(vals).SerialConsistency(st.serial))
		if err == nil {
			if applied {
				return true, nil, nil
			}
			if len(existing) == 0 {
				return false, nil, vote.ErrNoVote
			}
			return false, st.fullRow(ctx, b, existing), nil
		}
		if !outcomeUnknown(err) || ctx.Err() != nil {
			return false, nil, apperr.Unavailable("change vote", err)
		}
		st.unknown.Inc()
		lastErr = err
		var r voteRow
		rerr := selectVote.query(ctx, st.s).BindStruct(key).Consistency(gocql.Consistency(st.serial)).GetRelease(&r)
		if rerr == nil {
			r.PollID, r.VoterID = b.PollID, b.VoterID
			stored := r.toBallot()
			if _, ok := stored.Changes[requestID]; ok {
				return true, nil, nil
			}
			if stored.Version != from {
				return false, stored, nil
			}
			continue // not applied: issue it again
		}
		lastErr = rerr
		if err := retry.Sleep(ctx, time.Duration(50*(attempt+1))*time.Millisecond); err != nil {
			return false, nil, apperr.Unavailable("change vote", err)
		}
	}
	return false, nil, apperr.Unavailable("change vote: outcome unresolved", lastErr)
}

// fullRow is the stored ballot a change that did not apply found. The CAS
// answer of an UPDATE carries the compared columns only, so the row is
// read again (serially, it is what the condition was checked against).
func (st *VoteStore) fullRow(ctx context.Context, b *vote.Ballot, existing map[string]any) *vote.Ballot {
	var r voteRow
	if err := selectVote.query(ctx, st.s).BindStruct(voteRow{PollID: b.PollID, VoterID: b.VoterID}).
		Consistency(gocql.Consistency(st.serial)).GetRelease(&r); err == nil {
		r.PollID, r.VoterID = b.PollID, b.VoterID
		return r.toBallot()
	}
	return voteRowFromMap(b.PollID, b.VoterID, existing).toBallot()
}

// Entry reads the voter's index entry.
func (st *VoteStore) Entry(ctx context.Context, pollID id.ID, bucket int, voterID id.ID) (vote.IndexEntry, bool, error) {
	return st.entry(ctx, pollID, bucket, voterID, gocql.LocalQuorum)
}

func (st *VoteStore) entry(ctx context.Context, pollID id.ID, bucket int, voterID id.ID, c gocql.Consistency) (vote.IndexEntry, bool, error) {
	var r voteIndexRow
	err := selectEntry.query(ctx, st.s).BindStruct(voteIndexRow{PollID: pollID, Bucket: bucket, VoterID: voterID}).
		Consistency(c).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return vote.IndexEntry{}, false, nil
	}
	if err != nil {
		return vote.IndexEntry{}, false, apperr.Unavailable("read vote index entry", err)
	}
	return r.toIndexEntry(), true, nil
}

// MoveEntry writes e as the voter's index entry if it is still at version
// from (found=false: if there is none). An unknown outcome is settled by a
// serial read of the entry.
func (st *VoteStore) MoveEntry(ctx context.Context, pollID id.ID, bucket int, voterID id.ID, e vote.IndexEntry, from int, found bool) (bool, error) {
	vals := map[string]any{
		"options": e.Options, "scores": e.Scores, "flags": e.Flags, "commitment": e.Commitment, "vote_id": e.VoteID, "voted_at": e.VotedAt,
		"version": e.Version, "revoked": e.Revoked, "poll_id": pollID, "bucket": bucket, "voter_id": voterID, "from": from,
	}
	stmt := moveEntry
	switch {
	case !found:
		stmt = insertEntry
	case from == 0:
		stmt = moveFirstEntry
	}
	var lastErr error
	for attempt := range maxLWTAttempts {
		applied, _, err := execCAS(stmt.query(ctx, st.s).BindMap(vals).SerialConsistency(st.serial))
		if err == nil {
			return applied, nil
		}
		if !outcomeUnknown(err) || ctx.Err() != nil {
			return false, apperr.Unavailable("move vote index entry", err)
		}
		st.unknown.Inc()
		lastErr = err
		cur, ok, rerr := st.entry(ctx, pollID, bucket, voterID, gocql.Consistency(st.serial))
		switch {
		case rerr != nil:
			lastErr = rerr
			if err := retry.Sleep(ctx, time.Duration(50*(attempt+1))*time.Millisecond); err != nil {
				return false, apperr.Unavailable("move vote index entry", err)
			}
		case ok && cur.Version == e.Version:
			return true, nil
		case ok != found || (ok && cur.Version != from):
			return false, nil // moved by another
		}
	}
	return false, apperr.Unavailable("move vote index entry: outcome unresolved", lastErr)
}

var _ vote.ChangeStore = (*VoteStore)(nil)
