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

// FailureStore implements vote.FailureStore.
type FailureStore struct {
	s gocqlx.Session
}

// NewFailureStore builds the store.
func NewFailureStore(s gocqlx.Session) *FailureStore { return &FailureStore{s: s} }

var (
	insertFailure = newStatement(voteRequestFailuresTable.Insert())
	selectFailure = newStatement(voteRequestFailuresTable.Get("error_code", "message"))
)

// SaveFailure records why a request produced no ballot.
func (st *FailureStore) SaveFailure(ctx context.Context, pollID, voterID, requestID id.ID, f vote.Failure) error {
	r := voteRequestFailureRow{PollID: pollID, VoterID: voterID, RequestID: requestID,
		ErrorCode: f.Code, Message: f.Message, FailedAt: time.Now().UTC()}
	if err := insertFailure.query(ctx, st.s).BindStruct(r).ExecRelease(); err != nil {
		return apperr.Unavailable("save request failure", err)
	}
	return nil
}

// GetFailure reads a request's failure.
func (st *FailureStore) GetFailure(ctx context.Context, pollID, voterID, requestID id.ID) (vote.Failure, bool, error) {
	r := voteRequestFailureRow{PollID: pollID, VoterID: voterID, RequestID: requestID}
	err := selectFailure.query(ctx, st.s).BindStruct(r).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return vote.Failure{}, false, nil
	}
	if err != nil {
		return vote.Failure{}, false, apperr.Unavailable("read request failure", err)
	}
	return vote.Failure{Code: r.ErrorCode, Message: r.Message}, true, nil
}
