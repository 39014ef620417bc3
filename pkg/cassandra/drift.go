package cassandra

import (
	"context"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/livelag"
	"github.com/tally-vote/tally/pkg/tally"
)

var (
	insertDrift = newStatement(pollDriftTable.Insert())
	selectDrift = newStatement(pollDriftTable.Select("ballots", "max_option", "repaired"))
	insertLag   = newStatement(pollLiveLagTable.Insert())
	selectLag   = newStatement(qb.Select(pollLiveLagTable.Name()).Columns("counts", "max_ms").
			Where(qb.Eq("poll_id")).ToCql())
)

type pollDriftRow struct {
	PollID    id.ID      `db:"poll_id"`
	At        gocql.UUID `db:"at"`
	Ballots   int64      `db:"ballots"`
	MaxOption int64      `db:"max_option"`
	Repaired  bool       `db:"repaired"`
}

// RecordDrift keeps one reconciliation's measured counter drift.
func (st *TallyStore) RecordDrift(ctx context.Context, pollID id.ID, at time.Time, d tally.Drift) error {
	err := insertDrift.query(ctx, st.s).BindStruct(pollDriftRow{PollID: pollID, At: gocql.UUIDFromTime(at),
		Ballots: d.Ballots, MaxOption: d.MaxOption, Repaired: d.Repaired}).ExecRelease()
	if err != nil {
		return apperr.Unavailable("record drift", err)
	}
	return nil
}

// DriftRuns reads every drift a reconciliation measured on the poll.
func (st *TallyStore) DriftRuns(ctx context.Context, pollID id.ID) ([]tally.Drift, error) {
	iter := selectDrift.query(ctx, st.s).BindStruct(pollDriftRow{PollID: pollID}).Iter()
	var (
		out []tally.Drift
		r   pollDriftRow
	)
	for iter.StructScan(&r) {
		out = append(out, tally.Drift{Ballots: r.Ballots, MaxOption: r.MaxOption, Repaired: r.Repaired})
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("read drift", err)
	}
	return out, nil
}

// LagStore keeps the per-poll live-lag histograms (livelag.Store).
type LagStore struct{ st *TallyStore }

// NewLagStore is the live-lag store on s.
func NewLagStore(st *TallyStore) *LagStore { return &LagStore{st: st} }

type pollLagRow struct {
	PollID    id.ID     `db:"poll_id"`
	Source    string    `db:"source"`
	Counts    []int64   `db:"counts"`
	MaxMs     int64     `db:"max_ms"`
	UpdatedAt time.Time `db:"updated_at"`
}

// SaveLag replaces the source's histogram of the poll.
func (l *LagStore) SaveLag(ctx context.Context, pollID id.ID, source string, h livelag.Hist) error {
	return insertLag.query(ctx, l.st.s).BindStruct(pollLagRow{PollID: pollID, Source: source, Counts: h.Counts[:],
		MaxMs: h.MaxMs, UpdatedAt: time.Now().UTC()}).ExecRelease()
}

// LoadLag reads every source's histogram of the poll.
func (l *LagStore) LoadLag(ctx context.Context, pollID id.ID) ([]livelag.Hist, error) {
	return l.st.LoadLag(ctx, pollID)
}

// LoadLag reads every source's live-lag histogram of the poll.
func (st *TallyStore) LoadLag(ctx context.Context, pollID id.ID) ([]livelag.Hist, error) {
	iter := selectLag.query(ctx, st.s).Bind(pollID).Iter()
	var (
		out    []livelag.Hist
		counts []int64
		maxMs  int64
	)
	for iter.Scan(&counts, &maxMs) {
		var h livelag.Hist
		copy(h.Counts[:], counts)
		h.MaxMs = maxMs
		out = append(out, h)
		counts = nil
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("read live lag", err)
	}
	return out, nil
}
