package cassandra

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
)

// AuditStore implements audit.Store.
type AuditStore struct {
	s gocqlx.Session
}

// NewAuditStore builds the store.
func NewAuditStore(s gocqlx.Session) *AuditStore { return &AuditStore{s: s} }

var (
	insertAudit = newStatement(auditLogTable.Insert())
	selectAudit = newStatement(auditLogTable.SelectBuilder("poll_id", "at", "event", "actor_id", "detail").LimitNamed("limit").ToCql())
)

// Append writes one entry; its clustering key is a time UUID of e.At.
func (st *AuditStore) Append(ctx context.Context, e audit.Event) error {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	r := auditRow{PollID: e.PollID, At: gocql.UUIDFromTime(e.At), Event: e.Kind, ActorID: e.ActorID, Detail: string(detail)}
	if err := insertAudit.query(ctx, st.s).BindStruct(r).ExecRelease(); err != nil {
		return apperr.Unavailable("append audit entry", err)
	}
	return nil
}

// List reads a poll's entries, newest first.
func (st *AuditStore) List(ctx context.Context, pollID id.ID, limit int) ([]audit.Event, error) {
	iter := selectAudit.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID, "limit": limit}).Iter()
	var (
		out []audit.Event
		r   auditRow
	)
	for iter.StructScan(&r) {
		out = append(out, r.toEvent())
		r = auditRow{}
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("list audit entries", err)
	}
	return out, nil
}
