package cassandra

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
)

// AuditChainStore implements audit.ChainStore on audit_chain (019).
type AuditChainStore struct {
	s      gocqlx.Session
	serial gocql.SerialConsistency
}

// NewAuditChainStore builds the store.
func NewAuditChainStore(s gocqlx.Session, cfg Config) *AuditChainStore {
	serial, _ := parseSerial(cfg.SerialConsistency)
	return &AuditChainStore{s: s, serial: serial}
}

var (
	insertChainEntry = newStatement(auditChainTable.InsertBuilder().Unique().ToCql())
	selectChainEntry = newStatement(auditChainTable.Get())
	selectChainHead  = newStatement(auditChainTable.SelectBuilder().
				OrderBy("seq", qb.DESC).Limit(1).ToCql())
	selectChainAfter = newStatement(auditChainTable.SelectBuilder().
				Where(qb.GtNamed("seq", "after")).LimitNamed("limit").ToCql())
)

// auditChainRow is a row of audit_chain.
type auditChainRow struct {
	PollID   id.ID     `db:"poll_id"`
	Seq      int64     `db:"seq"`
	At       time.Time `db:"at"`
	Event    string    `db:"event"`
	ActorID  id.ID     `db:"actor_id"`
	Detail   string    `db:"detail"`
	PrevHash []byte    `db:"prev_hash"`
	Hash     []byte    `db:"hash"`
}

func toAuditChainRow(e audit.Entry) auditChainRow {
	return auditChainRow{PollID: e.PollID, Seq: e.Seq, At: e.At, Event: e.Kind, ActorID: e.ActorID,
		Detail: string(e.Detail), PrevHash: e.PrevHash, Hash: e.Hash}
}

func (r auditChainRow) toEntry() audit.Entry {
	return audit.Entry{PollID: r.PollID, Seq: r.Seq, At: r.At.UTC(), Kind: r.Event, ActorID: r.ActorID,
		Detail: []byte(r.Detail), PrevHash: r.PrevHash, Hash: r.Hash}
}

// Head reads the poll's last entry at serial consistency: a Paxos round
// left in flight on the partition (an append whose answer was lost) is
// completed first, so the head read is the one the next append must follow.
func (st *AuditChainStore) Head(ctx context.Context, pollID id.ID) (audit.Entry, bool, error) {
	var r auditChainRow
	err := selectChainHead.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID}).
		Consistency(gocql.Consistency(st.serial)).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return audit.Entry{}, false, nil
	}
	if err != nil {
		return audit.Entry{}, false, apperr.Unavailable("read audit chain head", err)
	}
	return r.toEntry(), true, nil
}

// Insert writes the entry IF NOT EXISTS on (poll_id, seq). An unknown
// outcome is settled by a serial read of the seq: applied if the row found
// carries this entry's hash.
func (st *AuditChainStore) Insert(ctx context.Context, e audit.Entry) (bool, error) {
	r := toAuditChainRow(e)
	applied, _, err := insertIfAbsent{
		op: "append audit entry",
		attempt: func(ctx context.Context) (*gocqlx.Queryx, func(map[string]any) bool) {
			return insertChainEntry.query(ctx, st.s).BindStruct(r), func(row map[string]any) bool {
				h, _ := row["hash"].([]byte)
				return bytes.Equal(h, e.Hash)
			}
		},
		read:   func(ctx context.Context) *gocqlx.Queryx { return selectChainEntry.query(ctx, st.s).BindStruct(r) },
		serial: st.serial,
	}.run(ctx)
	return applied, err
}

// Entries reads up to limit entries with seq > afterSeq, in seq order.
func (st *AuditChainStore) Entries(ctx context.Context, pollID id.ID, afterSeq int64, limit int) ([]audit.Entry, error) {
	iter := selectChainAfter.query(ctx, st.s).
		BindMap(qb.M{"poll_id": pollID, "after": afterSeq, "limit": limit}).Iter()
	var (
		out []audit.Entry
		r   auditChainRow
	)
	for iter.StructScan(&r) {
		out = append(out, r.toEntry())
		r = auditChainRow{}
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("list audit chain", err)
	}
	return out, nil
}
