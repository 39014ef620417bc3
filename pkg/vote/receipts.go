package vote

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/receipt"
)

// commit draws a fresh salt for b and sets b's commitment to its choice,
// once the choice is validated and normalised. It returns the salt, which
// exists only in memory from here to the answer; with receipts off it does
// nothing.
//
// The salt is answered at most once, by the attempt whose ballot is the
// one stored for the request; every other answer carries none:
//   - a direct write (sync, write-through) answers it only when its own
//     ballot applied: a replay finds the first attempt's row, whose
//     commitment another salt opened;
//   - a queued ballot (202) answers it unless the admission knows an
//     earlier attempt of the request (Admit.Retry): a retry with the same
//     Idempotency-Key while the first attempt is queued (or shed, its
//     produce maybe landing late) is queued behind it and replays;
//   - a retry after the close answers the stored outcome, no salt.
//
// A lost salt is not given again: the receipt (request status) still
// proves the ballot was recorded, without opening it.
func (s *Service) commit(b *Ballot) ([]byte, error) {
	if s.receipts == nil {
		return nil, nil
	}
	salt, err := receipt.NewSalt()
	if err != nil {
		return nil, apperr.Unavailable("draw receipt salt", err)
	}
	c, err := receipt.CommitBallot(salt, b.OptionIDs, b.Scores)
	if err != nil {
		return nil, fmt.Errorf("commit ballot: %w", err) // a validated choice always encodes
	}
	b.Commitment = c[:]
	return salt, nil
}

// accepted is the answer to a queued ballot: its request id, and, unless
// this attempt is a retry, its vote id and the salt. A retry's ballot is
// queued behind the first attempt's, which (queued first, for the same
// voter) is the one recorded; this attempt's salt would not open it.
func (s *Service) accepted(b *Ballot, salt []byte, retry bool) Receipt {
	rec := Receipt{RequestID: b.RequestID}
	switch {
	case salt == nil:
	case retry:
		s.m.receipts.WithLabelValues("retried").Inc()
	default:
		rec.VoteID, rec.Salt = b.VoteID, salt
		s.m.receipts.WithLabelValues("accepted").Inc()
	}
	return rec
}

// SignReceipt is b's receipt, signed now from the stored row: Ed25519 is
// deterministic, so every read of the same row gives the same receipt.
// Nil with receipts off, for a ballot recorded before them (no
// commitment), or when the ring cannot sign (logged).
func (s *Service) SignReceipt(b *Ballot) *receipt.Receipt {
	if s.receipts == nil || b == nil || len(b.Commitment) != receipt.CommitmentSize {
		return nil
	}
	r := receipt.Receipt{PollID: b.PollID, VoteID: b.VoteID, RecordedAt: b.VotedAt, BallotVersion: b.ReceiptVersion()}
	copy(r.Commitment[:], b.Commitment)
	if err := s.receipts.Sign(&r); err != nil {
		s.log.Error("sign ballot receipt", zap.Stringer("poll_id", b.PollID), zap.Stringer("vote_id", b.VoteID), zap.Error(err))
		return nil
	}
	return &r
}
