// Package verify checks what is derived from the vote rows, the per-poll
// index and the sharded counters, against the rows themselves, and repairs it.
package verify

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// ErrUnknownPoll is what a LayoutFunc returns for a poll without metadata.
var ErrUnknownPoll = errors.New("poll not found")

// Layout is how a poll spreads its derived data: the index buckets its
// voters hash into and the counter shards its votes increment.
type Layout struct {
	IndexBuckets  int
	CounterShards int
}

// LayoutFunc reads a poll's layout.
type LayoutFunc func(ctx context.Context, pollID gocql.UUID) (Layout, error)

// PollLayouts adapts a poll reader (poll.Service.Get, PollStore.Get) to a
// LayoutFunc.
func PollLayouts(get func(context.Context, gocql.UUID) (*poll.Poll, error)) LayoutFunc {
	return func(ctx context.Context, id gocql.UUID) (Layout, error) {
		p, err := get(ctx, id)
		if errors.Is(err, poll.ErrNotFound) {
			return Layout{}, ErrUnknownPoll
		}
		if err != nil {
			return Layout{}, err
		}
		return Layout{IndexBuckets: p.IndexBuckets, CounterShards: p.CounterShards}, nil
	}
}

// ScanFunc reads every vote row (cassandra.ScanVotes bound to a session).
type ScanFunc func(ctx context.Context, opts cassandra.ScanOptions, fn func(cassandra.VoteRow) error) error

// Index reads and writes single rows of the per-poll index
// (cassandra.IndexStore).
type Index interface {
	Get(ctx context.Context, pollID gocql.UUID, bucket int, voterID gocql.UUID) (cassandra.IndexEntry, bool, error)
	Put(ctx context.Context, pollID gocql.UUID, bucket int, voterID gocql.UUID, e cassandra.IndexEntry) error
}

// Counters reads and adjusts the sharded vote counters
// (cassandra.TallyStore).
type Counters interface {
	SumShards(ctx context.Context, pollID gocql.UUID, shards int) (tally.Counts, error)
	AdjustShard(ctx context.Context, pollID gocql.UUID, shard int, delta tally.Counts) error
}

// Deps are what a run reads and writes through.
type Deps struct {
	Scan     ScanFunc
	Layout   LayoutFunc
	Index    Index
	Counters Counters
	Log      *zap.Logger
	Now      func() time.Time
}

// SessionDeps wires a run to the cluster behind s.
func SessionDeps(s gocqlx.Session, layout LayoutFunc, log *zap.Logger) Deps {
	return Deps{
		Scan: func(ctx context.Context, o cassandra.ScanOptions, fn func(cassandra.VoteRow) error) error {
			return cassandra.ScanVotes(ctx, s, o, fn)
		},
		Layout:   layout,
		Index:    cassandra.NewIndexStore(s),
		Counters: cassandra.NewTallyStore(s),
		Log:      log,
		Now:      time.Now,
	}
}

// Options select what a run checks and repairs.
type Options struct {
	// Poll restricts the run to one poll; zero checks every poll.
	Poll gocql.UUID
	// Repair writes missing and wrong index rows, and the counter drift of
	// the polls counter repair is allowed for.
	Repair bool
	// RepairCounters allows counter repair for every poll; without it only
	// an explicitly selected Poll has its counters repaired.
	RepairCounters bool
	// Grace: a row younger than this whose index row is missing or wrong is
	// taken to be in flight (its follow-up writes not done yet), reported
	// apart and never repaired.
	Grace time.Duration
	// Splits and Workers tune the scan; see cassandra.ScanOptions.
	Splits, Workers int
	// Progress is called as scan ranges finish.
	Progress func(done, total int)
}

// Report is the outcome of a run, as `tally verify --json` prints it.
type Report struct {
	RowsScanned      int64          `json:"rows_scanned"`
	RowsChecked      int64          `json:"rows_checked"`
	Polls            int            `json:"polls"`
	IndexMissing     int64          `json:"index_missing"`
	IndexMismatched  int64          `json:"index_mismatched"`
	IndexInFlight    int64          `json:"index_in_flight"`
	IndexRepaired    int64          `json:"index_repaired"`
	IndexProblems    []IndexProblem `json:"index_problems"`
	UnknownPolls     []gocql.UUID   `json:"unknown_polls"`
	CounterDrift     []Drift        `json:"counter_drift"`
	CountersRepaired int            `json:"counters_repaired"`
	DurationMS       int64          `json:"duration_ms"`
	Consistent       bool           `json:"consistent"`
}

// maxProblems bounds the index problems listed in a report; the counts
// cover all of them.
const maxProblems = 100

// IndexProblem is one vote row whose index row is missing or wrong.
type IndexProblem struct {
	PollID   gocql.UUID `json:"poll_id"`
	VoterID  gocql.UUID `json:"voter_id"`
	Problem  string     `json:"problem"` // "missing" or "mismatched"
	Repaired bool       `json:"repaired"`
}

// Drift is one poll whose counter shards disagree with its vote rows.
// Deltas are rows minus counters: what a repair adds to shard 0.
type Drift struct {
	PollID       gocql.UUID           `json:"poll_id"`
	BallotDelta  int64                `json:"ballot_delta"`
	OptionDeltas map[gocql.UUID]int64 `json:"option_deltas"`
	Rows         tally.Counts         `json:"rows"`
	Counters     tally.Counts         `json:"counters"`
	Repaired     bool                 `json:"repaired"`
}

// Remaining counts the inconsistencies a run found and did not repair.
func (r Report) Remaining() int64 {
	n := r.IndexMissing + r.IndexMismatched - r.IndexRepaired + int64(len(r.UnknownPolls))
	for _, d := range r.CounterDrift {
		if !d.Repaired {
			n++
		}
	}
	return n
}
