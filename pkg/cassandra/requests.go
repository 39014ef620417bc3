package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/ingest"
)

// FailureStore implements ingest.FailureStore.
type FailureStore struct {
	s gocqlx.Session
}

// NewFailureStore builds the store.
func NewFailureStore(s gocqlx.Session) *FailureStore { return &FailureStore{s: s} }

// SaveFailure records why a request produced no ballot.
func (st *FailureStore) SaveFailure(ctx context.Context, pollID, voterID, requestID gocql.UUID, f ingest.Failure) error {
	err := st.s.Session.Query(`INSERT INTO vote_request_failures (poll_id, voter_id, request_id, error_code, message, failed_at)
		VALUES (?, ?, ?, ?, ?, ?)`, pollID, voterID, requestID, f.Code, f.Message, time.Now().UTC()).WithContext(ctx).Exec()
	if err != nil {
		return apperr.Unavailable("save request failure", err)
	}
	return nil
}

// GetFailure reads a request's failure.
func (st *FailureStore) GetFailure(ctx context.Context, pollID, voterID, requestID gocql.UUID) (ingest.Failure, bool, error) {
	var f ingest.Failure
	err := st.s.Session.Query(`SELECT error_code, message FROM vote_request_failures
		WHERE poll_id = ? AND voter_id = ? AND request_id = ?`, pollID, voterID, requestID).WithContext(ctx).Scan(&f.Code, &f.Message)
	if errors.Is(err, gocql.ErrNotFound) {
		return f, false, nil
	}
	if err != nil {
		return f, false, apperr.Unavailable("read request failure", err)
	}
	return f, true, nil
}
