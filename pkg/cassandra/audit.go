package cassandra

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
)

// AuditStore implements audit.Store.
type AuditStore struct {
	s gocqlx.Session
}

// NewAuditStore builds the store.
func NewAuditStore(s gocqlx.Session) *AuditStore { return &AuditStore{s: s} }

// Append writes one entry; its clustering key is a time UUID of e.At.
func (st *AuditStore) Append(ctx context.Context, e audit.Event) error {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	err = st.s.Session.Query(`INSERT INTO audit_log (poll_id, at, event, actor_id, detail) VALUES (?, ?, ?, ?, ?)`,
		e.PollID, gocql.UUIDFromTime(e.At), e.Kind, e.ActorID, string(detail)).WithContext(ctx).Exec()
	if err != nil {
		return apperr.Unavailable("append audit entry", err)
	}
	return nil
}

// List reads a poll's entries, newest first.
func (st *AuditStore) List(ctx context.Context, pollID gocql.UUID, limit int) ([]audit.Event, error) {
	iter := st.s.Session.Query(`SELECT at, event, actor_id, detail FROM audit_log WHERE poll_id = ? LIMIT ?`,
		pollID, limit).WithContext(ctx).Iter()
	var (
		out    []audit.Event
		at     gocql.UUID
		kind   string
		actor  gocql.UUID
		detail string
	)
	for iter.Scan(&at, &kind, &actor, &detail) {
		e := audit.Event{PollID: pollID, At: at.Time().UTC(), Kind: kind, ActorID: actor}
		_ = json.Unmarshal([]byte(detail), &e.Detail)
		out = append(out, e)
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("list audit entries", err)
	}
	return out, nil
}
