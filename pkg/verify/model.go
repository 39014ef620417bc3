// Package verify checks what is derived from the vote rows, the per-poll
// index and the sharded counters, against the rows themselves, and repairs it.
package verify

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// ErrUnknownPoll is what a LayoutFunc returns for a poll without metadata.
var ErrUnknownPoll = errors.New("poll not found")

// Layout is how a poll spreads its derived data: the index buckets its
// voters hash into and the counter shards its votes increment.
type Layout struct {
	IndexBuckets  int
	CounterShards int
	// Method is the poll's counting method: what a ballot adds to the
	// counters and totals (tally.Tallied).
	Method count.Method
}

// LayoutFunc reads a poll's layout.
type LayoutFunc func(ctx context.Context, pollID id.ID) (Layout, error)

// PollLayouts adapts a poll reader (poll.Service.Get, PollStore.Get) to a
// LayoutFunc.
func PollLayouts(get func(context.Context, id.ID) (*poll.Poll, error)) LayoutFunc {
	return func(ctx context.Context, id id.ID) (Layout, error) {
		p, err := get(ctx, id)
		if errors.Is(err, poll.ErrNotFound) {
			return Layout{}, ErrUnknownPoll
		}
		if err != nil {
			return Layout{}, err
		}
		return Layout{IndexBuckets: p.IndexBuckets, CounterShards: p.CounterShards, Method: p.Settings.CountingMethod()}, nil
	}
}

// ScanFunc reads every vote row as a ballot, calling fn from several
// goroutines at once (cassandra.VoteSource.Scan).
type ScanFunc func(ctx context.Context, opts scan.Options, fn func(vote.Ballot) error) error

// Index reads and writes single rows of the per-poll index
// (cassandra.IndexStore).
type Index interface {
	Get(ctx context.Context, pollID id.ID, bucket int, voterID id.ID) (vote.IndexEntry, bool, error)
	Put(ctx context.Context, pollID id.ID, bucket int, voterID id.ID, e vote.IndexEntry) error
}

// Counters reads and adjusts the sharded vote counters
// (cassandra.TallyStore).
type Counters interface {
	SumShards(ctx context.Context, pollID id.ID, shards int) (tally.Counts, error)
	AdjustShard(ctx context.Context, pollID id.ID, shard int, delta tally.Counts) error
}

// Finals reads the frozen final tallies (cassandra.TallyStore).
type Finals interface {
	// LoadFinal returns a poll's frozen final tally; found is false if none.
	LoadFinal(ctx context.Context, pollID id.ID) (f tally.Frozen, found bool, err error)
	// FinalPolls lists every poll with a frozen final tally.
	FinalPolls(ctx context.Context) ([]id.ID, error)
}

// Deps are what a run reads and writes through.
type Deps struct {
	Scan     ScanFunc
	Layout   LayoutFunc
	Index    Index
	Counters Counters
	Finals   Finals
	Log      *zap.Logger
	Now      func() time.Time
}

// Options select what a run checks and repairs.
type Options struct {
	// Poll restricts the run to one poll; zero checks every poll.
	Poll id.ID
	// Repair writes missing and wrong index rows, and the counter drift of
	// the polls counter repair is allowed for. It writes nothing to a poll
	// whose final tally is frozen; those problems are reported as frozen.
	Repair bool
	// RepairCounters allows counter repair for every poll; without it only
	// an explicitly selected Poll has its counters repaired.
	RepairCounters bool
	// Grace: a row younger than this whose index row is missing or wrong is
	// taken to be in flight (its follow-up writes not done yet), reported
	// apart and never repaired.
	Grace time.Duration
	// Splits and Workers tune the scan; see scan.Options.
	Splits, Workers int
	// Progress is called as scan ranges finish.
	Progress func(done, total int)
}

// Report is the outcome of a run, as `tally verify --json` prints it.
type Report struct {
	RowsScanned     int64 `json:"rows_scanned"`
	RowsChecked     int64 `json:"rows_checked"`
	Polls           int   `json:"polls"`
	IndexMissing    int64 `json:"index_missing"`
	IndexMismatched int64 `json:"index_mismatched"`
	IndexInFlight   int64 `json:"index_in_flight"`
	IndexRepaired   int64 `json:"index_repaired"`
	// IndexFrozen counts the index problems of polls whose final tally is
	// frozen: reported, never repaired, since nothing is written to a
	// frozen poll.
	IndexFrozen      int64          `json:"index_frozen"`
	IndexProblems    []IndexProblem `json:"index_problems"`
	UnknownPolls     []id.ID        `json:"unknown_polls"`
	CounterDrift     []Drift        `json:"counter_drift"`
	CountersRepaired int            `json:"counters_repaired"`
	// FinalsChecked counts the frozen final tallies compared with the rows.
	FinalsChecked   int             `json:"finals_checked"`
	FinalMismatches []FinalMismatch `json:"final_mismatches"`
	DurationMS      int64           `json:"duration_ms"`
	Consistent      bool            `json:"consistent"`
}

// maxProblems bounds the index problems listed in a report; the counts
// cover all of them.
const maxProblems = 100

// IndexProblem is one vote row whose index row is missing or wrong.
type IndexProblem struct {
	PollID   id.ID  `json:"poll_id"`
	VoterID  id.ID  `json:"voter_id"`
	Problem  string `json:"problem"` // "missing" or "mismatched"
	Repaired bool   `json:"repaired"`
	// Frozen: the poll's final tally is frozen, so --repair left it.
	Frozen bool `json:"frozen"`
}

// Drift is one poll whose counter shards disagree with its vote rows.
// Deltas are rows minus counters: what a repair adds to shard 0.
type Drift struct {
	PollID       id.ID           `json:"poll_id"`
	BallotDelta  int64           `json:"ballot_delta"`
	OptionDeltas map[id.ID]int64 `json:"option_deltas"`
	Rows         tally.Counts    `json:"rows"`
	Counters     tally.Counts    `json:"counters"`
	Repaired     bool            `json:"repaired"`
	// Frozen: the poll's final tally is frozen, so --repair left it.
	Frozen bool `json:"frozen"`
	// InFlight rows of the poll were written within the grace and are not
	// indexed yet; their counter increments may be on the way, so --repair
	// left the counters (run it again later).
	InFlight int64 `json:"in_flight,omitempty"`
}

// FinalMismatch is one count of a frozen final tally that differs from the
// poll's vote rows: a row written or lost after the freeze. OptionID is
// tally.BallotKey (the zero id) for the ballot count, as in final_tallies.
type FinalMismatch struct {
	PollID   id.ID `json:"poll_id"`
	OptionID id.ID `json:"option_id"`
	Final    int64 `json:"final"`
	Rows     int64 `json:"rows"`
}

// Remaining counts the inconsistencies a run found and did not repair.
func (r Report) Remaining() int64 {
	n := r.IndexMissing + r.IndexMismatched - r.IndexRepaired + int64(len(r.UnknownPolls)) +
		int64(len(r.FinalMismatches))
	for _, d := range r.CounterDrift {
		if !d.Repaired {
			n++
		}
	}
	return n
}
