package vote

import (
	"context"
	"errors"
	"fmt"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
)

// versioned reports whether b's follow-ups go through settle: a changed,
// revoked or recast ballot. A ballot as first cast keeps the plain,
// idempotent index write.
func versioned(b *Ballot) bool { return b.Version > 0 || b.Revoked }

// settle brings the voter's index entry, and with it the live counters, to
// the ballot b: it reads the entry, applies the difference between what
// the entry counted and what b counts to the counters, then moves the
// entry to b's version with IF version = the version read. An entry at b's
// version or later has been settled already (a redelivery, or a later
// change settled first): nothing is written. Losing the conditional write
// to a concurrent settle takes the difference back and starts over, so a
// voter's follow-ups on the sync path, the worker and a replay apply each
// difference once; only a crash between the counters and the entry counts
// it twice, which reconciliation repairs (the index, and so the final
// tally, is exact either way).
func (s *Service) settle(ctx context.Context, p *poll.Poll, b *Ballot) error {
	bk := Bucket(b.VoterID, p.IndexBuckets)
	// The entry carries the row's commitment: the ledger reads
	// commitments through the index, checked against the rows.
	want := IndexEntry{VoteID: b.VoteID, Options: b.OptionIDs, VotedAt: b.VotedAt, Flags: b.Flags, Scores: b.Scores,
		Commitment: b.Commitment, Version: b.Version, Revoked: b.Revoked}
	shard := Shard(b.VoteID, p.CounterShards)
	for attempt := 0; attempt < maxSettleAttempts; attempt++ {
		e, found, err := s.changes.Entry(ctx, p.ID, bk, b.VoterID)
		if err != nil {
			return err
		}
		if found && e.Version >= b.Version {
			return nil
		}
		var from, to *IndexEntry
		if found && !e.Revoked {
			from = &e
		}
		if !b.Revoked {
			to = &want
		}
		if err := s.moves.Move(ctx, p, shard, from, to); err != nil {
			s.m.followUp.WithLabelValues("counter").Inc()
			return err
		}
		moved, err := s.changes.MoveEntry(ctx, p.ID, bk, b.VoterID, want, e.Version, found)
		if err != nil {
			// Unsettled: the counters moved and the entry may not have.
			// Take them back; the caller retries from the start.
			s.m.followUp.WithLabelValues("index").Inc()
			if rerr := s.moves.Move(ctx, p, shard, to, from); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		if moved {
			return nil
		}
		// A concurrent settle moved the entry first: undo and read again.
		s.m.settleLost.Inc()
		if err := s.moves.Move(ctx, p, shard, to, from); err != nil {
			return err
		}
	}
	return apperr.Unavailable("settle vote index", fmt.Errorf("entry of voter %s kept moving", b.VoterID))
}

// maxSettleAttempts bounds settle's read-and-move rounds per call.
const maxSettleAttempts = 8
