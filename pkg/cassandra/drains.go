package cassandra

import (
	"context"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
)

// RegionDrains implements tally.RegionDrains on region_drains.
type RegionDrains struct {
	s   gocqlx.Session
	now func() time.Time
}

// NewRegionDrains builds the store.
func NewRegionDrains(s gocqlx.Session, now func() time.Time) *RegionDrains {
	return &RegionDrains{s: s, now: now}
}

var (
	insertDrain = newStatement(regionDrainsTable.Insert())
	selectDrain = newStatement(qb.Select(regionDrainsTable.Name()).Columns("region", "drained_through").ToCql())
)

type regionDrainRow struct {
	Region         string    `db:"region"`
	DrainedThrough time.Time `db:"drained_through"`
	RecordedAt     time.Time `db:"recorded_at"`
}

// Record sets the region's drain point. Several workers of one region
// write the same row; a lower point written last only makes freezes wait
// a round longer.
func (st *RegionDrains) Record(ctx context.Context, region string, through time.Time) error {
	row := regionDrainRow{Region: region, DrainedThrough: through.UTC(), RecordedAt: st.now().UTC()}
	if err := insertDrain.query(ctx, st.s).BindStruct(row).ExecRelease(); err != nil {
		return apperr.Unavailable("record region drain", err)
	}
	return nil
}

// All reads every region's drain point (a handful of rows).
func (st *RegionDrains) All(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	iter := selectDrain.query(ctx, st.s).Iter()
	var r regionDrainRow
	for iter.StructScan(&r) {
		out[r.Region] = r.DrainedThrough
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("read region drains", err)
	}
	return out, nil
}
