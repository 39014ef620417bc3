package cassandra

import (
	"context"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// unfinishedBuckets spreads one poll's unfinished_ballots rows over this
// many partitions, so a viral poll voted through the direct path keeps each
// partition's tombstones (one per finished ballot, dropped after an hour)
// far below Cassandra's tombstone thresholds when the freeze reads them.
const unfinishedBuckets = 64

// Unfinished implements vote.Unfinished on unfinished_ballots.
type Unfinished struct{ s gocqlx.Session }

// NewUnfinished builds the store.
func NewUnfinished(s gocqlx.Session) *Unfinished { return &Unfinished{s: s} }

var (
	insertUnfinished = newStatement(unfinishedBallotsTable.Insert())
	deleteUnfinished = newStatement(unfinishedBallotsTable.Delete())
	selectUnfinished = newStatement(qb.Select(unfinishedBallotsTable.Name()).Columns("voter_id").
				Where(qb.Eq("poll_id"), qb.Eq("bucket")).ToCql())
)

type unfinishedRow struct {
	PollID  id.ID     `db:"poll_id"`
	Bucket  int       `db:"bucket"`
	VoterID id.ID     `db:"voter_id"`
	Since   time.Time `db:"since"`
}

func unfinishedBucket(voterID id.ID) int { return hashBucket(voterID, unfinishedBuckets) }

// Begin records that the voter's ballot may be about to be written
// without its index row.
func (st *Unfinished) Begin(ctx context.Context, pollID, voterID id.ID) error {
	r := unfinishedRow{PollID: pollID, Bucket: unfinishedBucket(voterID), VoterID: voterID, Since: time.Now().UTC()}
	if err := insertUnfinished.query(ctx, st.s).BindStruct(r).ExecRelease(); err != nil {
		return apperr.Unavailable("record unfinished ballot", err)
	}
	return nil
}

// Done forgets a row Begin wrote.
func (st *Unfinished) Done(ctx context.Context, pollID, voterID id.ID) error {
	r := unfinishedRow{PollID: pollID, Bucket: unfinishedBucket(voterID), VoterID: voterID}
	if err := deleteUnfinished.query(ctx, st.s).BindStruct(r).ExecRelease(); err != nil {
		return apperr.Unavailable("remove unfinished ballot", err)
	}
	return nil
}

// List returns the poll's voters with a row, bucket by bucket.
func (st *Unfinished) List(ctx context.Context, pollID id.ID) ([]id.ID, error) {
	var out []id.ID
	for b := range unfinishedBuckets {
		iter := selectUnfinished.query(ctx, st.s).BindMap(qb.M{"poll_id": pollID, "bucket": b}).PageSize(1000).Iter()
		var voter id.ID
		for iter.Scan(&voter) {
			out = append(out, voter)
		}
		if err := iter.Close(); err != nil {
			return nil, apperr.Unavailable("read unfinished ballots", err)
		}
	}
	return out, nil
}
