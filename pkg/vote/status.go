package vote

import (
	"context"
	"errors"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
)

// ErrRequestNotFound is a request id this voter never had accepted.
var ErrRequestNotFound = apperr.New(apperr.CodeRequestNotFound, "no such vote request for this caller")

// Failure is the stored outcome of a request that did not produce a ballot.
type Failure struct {
	Code    string
	Message string
}

// FailureStore keeps failed request outcomes.
type FailureStore interface {
	SaveFailure(ctx context.Context, pollID, voterID, requestID id.ID, f Failure) error
	// GetFailure returns found=false when the request has no failure.
	GetFailure(ctx context.Context, pollID, voterID, requestID id.ID) (Failure, bool, error)
}

// States of an async request.
const (
	Pending   = "pending"
	Completed = "completed"
	Failed    = "failed"
)

// RequestStatus is the answer of GET …/votes/requests/{id}.
type RequestStatus struct {
	RequestID id.ID
	State     string
	VoteID    id.ID
	Failure   Failure
	// Receipt is a completed request's receipt, signed from the stored
	// row (nil with receipts off or on a ballot recorded before them).
	// The salt is never part of a status: it was answered once, with the
	// vote.
	Receipt *receipt.Receipt
}

// Statuses derives a request's state from the truth: the voter's ballot row
// carries this request id (completed) or another one (failed: already
// voted); a stored failure says why it failed; otherwise it is pending if
// it was accepted.
type Statuses struct {
	votes    *Service
	failures FailureStore
	accepted Accepted
}

// Accepted answers whether a request was accepted for the voter (Flags
// does).
type Accepted interface {
	Accepted(ctx context.Context, pollID, voterID, requestID id.ID) (bool, error)
}

// NewStatuses builds the reader; accepted answers whether a request was
// accepted.
func NewStatuses(votes *Service, failures FailureStore, accepted Accepted) *Statuses {
	return &Statuses{votes: votes, failures: failures, accepted: accepted}
}

// changeable reports whether the poll allows changing a ballot, from the
// process's view of it (no Cassandra read).
func (s *Statuses) changeable(ctx context.Context, pollID id.ID) bool {
	p, _, err := s.votes.polls.View(ctx, pollID)
	return err == nil && p.Settings.AllowVoteChange
}

// Get returns the state of the caller's request.
func (s *Statuses) Get(ctx context.Context, pollID, voterID, requestID id.ID) (RequestStatus, error) {
	st := RequestStatus{RequestID: requestID}
	b, err := s.votes.Mine(ctx, pollID, voterID)
	if err != nil && !errors.Is(err, ErrNoVote) {
		return st, err
	}
	if err == nil && (b.RequestID == requestID || b.Changes[requestID] != (ChangeOutcome{})) {
		// A revoke is complete for its voter once the flag is free to
		// vote again: the worker releases it after the revoke's write, so
		// a worker killed in between leaves it held until the revoke is
		// redelivered. Release it here too (a compare-and-delete on the
		// request that cast the revoked ballot; a vote cast since keeps
		// its own flag), so "completed" means the voter may vote again.
		if o, ok := b.Changes[requestID]; ok {
			s.votes.releaseAgain(ctx, b, o)
		}
		st.State, st.VoteID = Completed, b.VoteID
		if st.Receipt = s.votes.SignReceipt(b); st.Receipt != nil {
			s.votes.m.receipts.WithLabelValues("status").Inc()
		}
		return st, nil
	}
	// Not this voter's ballot: an id the server never issued for this poll
	// and voter is unknown, whatever Redis can say.
	if !s.votes.ids.Issued(pollID, voterID, requestID) {
		return st, ErrRequestNotFound
	}
	f, found, err := s.failures.GetFailure(ctx, pollID, voterID, requestID)
	if err != nil {
		return st, err
	}
	if found {
		st.State, st.Failure = Failed, f
		return st, nil
	}
	accepted, err := s.accepted.Accepted(ctx, pollID, voterID, requestID)
	known := err != nil || accepted // unknown (Redis down): assume it was
	switch {
	case !known:
		return st, ErrRequestNotFound
	case b != nil && s.changeable(ctx, pollID):
		// On a poll whose ballots change, an accepted request of a voter
		// with a ballot may be a queued change or a vote after a revoke:
		// pending until the worker stores its outcome (the row's changes,
		// or a failure).
		st.State = Pending
	case b != nil:
		// The voter's ballot came from another request; this one will
		// fail (or has failed) as a duplicate.
		st.State = Failed
		st.Failure = Failure{Code: ErrAlreadyVoted.Code.String(), Message: ErrAlreadyVoted.Message}
	default:
		st.State = Pending
	}
	return st, nil
}
