// Package vote casts votes exactly once: option rules, idempotency keys, and
// resolving a conditional write whose outcome the cluster did not report.
package vote

import (
	"hash/fnv"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// Sentinels.
var (
	ErrAlreadyVoted        = apperr.New(apperr.CodeAlreadyVoted, "you have already voted on this poll")
	ErrInvalidOption       = apperr.New(apperr.CodeInvalidOption, "the option is not part of this poll")
	ErrAnonymousNotAllowed = apperr.New(apperr.CodeForbidden, "this poll does not accept anonymous votes, log in to vote")
	ErrNoVote              = apperr.New(apperr.CodeNotFound, "no vote")
	// ErrVoteUndecided: another request of the same voter holds the
	// voter's flag and is not yet durably queued. Answered 503 with
	// Retry-After, never 202: that request may still be recorded.
	ErrVoteUndecided = apperr.New(apperr.CodeUnavailable, "another vote request of yours for this poll is being recorded, retry shortly")
	// ErrShed: the queue shed the ballot because its produce missed the
	// deadline while Kafka was still acknowledging (overload). The
	// message was handed to the writer and may still be recorded, so the
	// answer (503 OVERLOADED + Retry-After) says so: a retry with the
	// same Idempotency-Key learns the ballot's outcome.
	ErrShed = apperr.New(apperr.CodeOverloaded, "the server is at capacity and this vote may still be recorded: retry with the same Idempotency-Key to learn its outcome")
)

// Ballot is one voter's vote on one poll: the row in `votes`.
type Ballot struct {
	PollID         id.ID
	VoterID        id.ID
	OptionIDs      []id.ID
	VoteID         id.ID
	RequestID      id.ID
	IdempotencyKey string
	VotedAt        time.Time
	Anonymous      bool
	IP             string
	UserAgent      string
	// Device is a keyed hash of the client's device fingerprint, or empty.
	Device string
	// Flags are the bot signals the ballot tripped when it was accepted
	// (pkg/abuse), sorted; a flagged ballot is recorded and counted like
	// any other, and a re-tally can leave it out.
	Flags []string
	// Scores are a score poll's ballot: Scores[i] (0..count.MaxScore) is
	// the score given to OptionIDs[i]. Nil on every other method.
	Scores []int
	// Commitment is the ballot's receipt commitment (pkg/receipt,
	// receipt.CommitmentSize bytes): SHA-256 of a salt only the voter
	// holds and the choice, options and scores. Nil on ballots recorded
	// before receipts, or with receipts off. The salt is never on a
	// Ballot.
	Commitment []byte
	// WrittenAt is when the row was written to Cassandra, as a scan of
	// votes reads it (zero elsewhere). VotedAt is when the vote was
	// accepted: for a backlog applied late, long before the row existed.
	WrittenAt time.Time
	// Version counts the changes made to the ballot (0: as first cast):
	// every change, revoke and vote cast again after a revoke moves it on
	// by one, each a conditional write against the version it read.
	Version int
	// Revoked is a revoked ballot: the row stays, so that no redelivery or
	// retry of the first request writes the ballot back, and counts
	// nothing.
	Revoked bool
	// ChangedAt is when the last change was applied (zero before one).
	ChangedAt time.Time
	// Changes are the change requests applied to the ballot, by request
	// id, with what each did: a retried change is answered from here.
	Changes map[id.ID]ChangeOutcome
	// Change is what a queued change asks of the voter's ballot
	// (KindChanged, KindRevoked); empty for a vote. Never stored.
	Change string
}

// ReceiptVersion is the ballot version its receipt signs: the row's
// version plus one, so a ballot as first cast (version 0) signs 1, as
// every receipt issued before changes did, and each change, revoke or
// vote cast again after a revoke moves it on by one. A receipt of an
// older version verifies as superseded (or revoked).
func (b *Ballot) ReceiptVersion() uint32 { return ReceiptVersion(b.Version) }

// ReceiptVersion is the receipt version of row version v.
func ReceiptVersion(v int) uint32 { return uint32(max(v, 0)) + 1 }

// RowVersion is the row version a receipt version names (-1 for 0, which
// no receipt carries).
func RowVersion(rv uint32) int { return int(rv) - 1 }

// SameRequest reports whether other is the stored outcome of the request
// that produced b: same request id, or same non-empty idempotency key.
func (b *Ballot) SameRequest(other *Ballot) bool {
	if b.RequestID == other.RequestID {
		return true
	}
	return b.IdempotencyKey != "" && b.IdempotencyKey == other.IdempotencyKey
}

// Choose validates the chosen options against the poll's rules and returns
// them, in the order given: on ranked and Schulze polls that order is the
// voter's preference, most preferred first, and need not rank every
// option. Unknown options are INVALID_OPTION (422); a malformed choice
// (none, duplicates, too few, too many) is VALIDATION_FAILED (400).
func Choose(p *poll.Poll, ids []id.ID) ([]id.ID, error) {
	if len(ids) == 0 {
		return nil, apperr.Invalid("option_id", "is required")
	}
	if len(ids) > 1 && p.Settings.CountingMethod() == count.Plurality {
		return nil, apperr.Invalid("option_ids", "this poll takes a single option")
	}
	if max := p.MaxChoices(); len(ids) > max {
		return nil, apperr.Invalid("option_ids", "at most %d options may be chosen", max)
	}
	if min := p.MinChoices(); len(ids) < min {
		return nil, apperr.Invalid("option_ids", "at least %d options must be chosen", min)
	}
	seen := make(map[id.ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return nil, apperr.Invalid("option_ids", "an option is chosen twice")
		}
		seen[id] = true
		if _, ok := p.Option(id); !ok {
			return nil, ErrInvalidOption
		}
	}
	return ids, nil
}

// CheckVoter enforces who may vote on p at now.
func CheckVoter(p *poll.Poll, anonymous bool, now time.Time) error {
	if p.StatusAt(now) != poll.Active {
		return poll.ErrNotActive
	}
	if anonymous && !p.Settings.AllowAnonymous {
		return ErrAnonymousNotAllowed
	}
	return nil
}

// Bucket is the index bucket of a voter: hash(voter) mod buckets.
func Bucket(voter id.ID, buckets int) int {
	return int(hash(voter[:]) % uint32(max(buckets, 1)))
}

// Shard is the counter shard a vote increments: hash(vote_id) mod shards.
func Shard(voteID id.ID, shards int) int {
	return int(hash(voteID[:]) % uint32(max(shards, 1)))
}

func hash(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// IndexEntry is one voter's entry in a poll's index of counted ballots
// (votes_by_poll): its presence with the ballot's vote id is what makes the
// ballot counted, so follow-ups, reconciliation and verify agree on it.
type IndexEntry struct {
	VoteID id.ID
	// Options are the options the ballot counted for.
	Options []id.ID
	VotedAt time.Time
	// Flags are the ballot's bot signals (pkg/abuse).
	Flags []string
	// Scores are a score ballot's scores, in Options' order.
	Scores []int
	// Commitment is the ballot's receipt commitment, nil when it has none.
	Commitment []byte
	// Version is the ballot version the entry counted; Revoked entries
	// count nothing (the voter revoked the ballot).
	Version int
	Revoked bool
}
