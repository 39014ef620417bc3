package cassandra

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
)

// pendingBuckets spreads pending_finals over this many partitions; a
// worker reads every one of them each round.
const pendingBuckets = 16

// PendingFinals implements tally.PendingFinals on pending_finals.
type PendingFinals struct{ s gocqlx.Session }

// NewPendingFinals builds the store.
func NewPendingFinals(s gocqlx.Session) *PendingFinals { return &PendingFinals{s: s} }

var (
	insertPending = newStatement(pendingFinalsTable.Insert())
	deletePending = newStatement(pendingFinalsTable.Delete())
	selectDue     = newStatement(qb.Select(pendingFinalsTable.Name()).Columns("due_at", "poll_id").
			Where(qb.Eq("bucket"), qb.LtOrEqNamed("due_at", "now")).ToCql())
)

type pendingFinalRow struct {
	Bucket int       `db:"bucket"`
	DueAt  time.Time `db:"due_at"`
	PollID id.ID     `db:"poll_id"`
}

func pendingBucket(pollID id.ID) int { return hashBucket(pollID, pendingBuckets) }

// hashBucket spreads ids over n buckets by an FNV-1a hash of their bytes.
func hashBucket(x id.ID, n int) int {
	h := fnv.New32a()
	_, _ = h.Write(x[:])
	return int(h.Sum32() % uint32(n))
}

func pendingRow(f tally.PendingFinal) pendingFinalRow {
	// Millisecond precision, as the column stores it: Done must name the
	// row Schedule wrote.
	return pendingFinalRow{Bucket: pendingBucket(f.PollID), DueAt: f.Due.UTC().Truncate(time.Millisecond), PollID: f.PollID}
}

// Schedule records that the poll's final tally is due at f.Due.
func (st *PendingFinals) Schedule(ctx context.Context, f tally.PendingFinal) error {
	if err := insertPending.query(ctx, st.s).BindStruct(pendingRow(f)).ExecRelease(); err != nil {
		return apperr.Unavailable("schedule final tally", err)
	}
	return nil
}

// Done removes a row Schedule wrote.
func (st *PendingFinals) Done(ctx context.Context, f tally.PendingFinal) error {
	if err := deletePending.query(ctx, st.s).BindStruct(pendingRow(f)).ExecRelease(); err != nil {
		return apperr.Unavailable("remove pending final tally", err)
	}
	return nil
}

// Due lists the rows due at or before now, earliest first per bucket.
func (st *PendingFinals) Due(ctx context.Context, now time.Time) ([]tally.PendingFinal, error) {
	var out []tally.PendingFinal
	for b := range pendingBuckets {
		iter := selectDue.query(ctx, st.s).BindMap(qb.M{"bucket": b, "now": now.UTC()}).PageSize(1000).Iter()
		var r pendingFinalRow
		for iter.StructScan(&r) {
			out = append(out, tally.PendingFinal{PollID: r.PollID, Due: r.DueAt})
		}
		if err := iter.Close(); err != nil {
			return nil, apperr.Unavailable("read pending final tallies", err)
		}
	}
	return out, nil
}
