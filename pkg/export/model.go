// Package export writes the vote rows of one poll, or of the whole votes
// table, to CSV, JSON Lines or Parquet for analytics, with voter ids
// pseudonymised by a keyed hash, resumably unit by unit (token range or
// index bucket) — `tally export`'s Run — or streams one poll's rows to a
// writer as they are read, with per-poll pseudonyms and coarsened times,
// for the API's owner export (Stream).
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

// Format is an output format.
type Format string

// The formats an export writes.
const (
	CSV     Format = "csv"
	JSONL   Format = "jsonl"
	Parquet Format = "parquet"
)

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case CSV, JSONL, Parquet:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want csv, jsonl or parquet", s)
}

// MinKeyBytes is the shortest pseudonym key accepted.
const MinKeyBytes = 16

// Errors of a run's set-up, before anything is read.
var (
	ErrNoKey          = errors.New("no pseudonym key: set TALLY_EXPORT_PSEUDONYM_KEY (or --pseudonym-key-file), or pass --real-voter-ids")
	ErrCheckpoint     = errors.New("checkpoint does not match this export")
	ErrCheckpointLeft = errors.New("an interrupted export left its checkpoint")
)

// Options select what a run exports and how.
type Options struct {
	// Poll exports one poll through its per-poll index; zero exports the
	// whole votes table by token ranges.
	Poll   id.ID
	Format Format
	// Out is the output file; "" or "-" is standard output (not resumable).
	Out string
	// Resume continues the run whose checkpoint (Out + ".checkpoint") is
	// left; without it a left checkpoint is an error.
	Resume bool
	// PseudonymKey keys the HMAC-SHA256 that replaces voter ids. Required,
	// at least MinKeyBytes long, unless RealVoterIDs.
	PseudonymKey []byte
	// RealVoterIDs writes voter ids as they are. Exclusive with a key.
	RealVoterIDs bool
	// IncludeIP and IncludeUserAgent add those columns (abuse metadata,
	// personal data); they are left out otherwise.
	IncludeIP, IncludeUserAgent bool
	// Consistency of every read (zero: LOCAL_QUORUM).
	Consistency scan.Consistency
	// Splits is the least number of token ranges of a table export; see
	// Source.Plan.
	Splits int
	// Workers bounds the units read at once (default 8).
	Workers int
	// Progress, if set, hears done and total units after each, never from
	// two goroutines at once.
	Progress func(done, total int)
}

const defaultWorkers = 8

// toStdout reports whether the output is standard output.
func (o Options) toStdout() bool { return o.Out == "" || o.Out == "-" }

// CheckpointPath is where a file export keeps its checkpoint.
func (o Options) CheckpointPath() string { return o.Out + ".checkpoint" }

// partialPath is the file rows are appended to until the export is done.
func (o Options) partialPath() string { return o.Out + ".partial" }

// Validate reports options a run refuses, before anything is read.
func (o Options) Validate() error {
	if _, err := ParseFormat(string(o.Format)); err != nil {
		return err
	}
	switch {
	case o.RealVoterIDs && len(o.PseudonymKey) > 0:
		return errors.New("--real-voter-ids and a pseudonym key exclude each other")
	case !o.RealVoterIDs && len(o.PseudonymKey) == 0:
		return ErrNoKey
	case !o.RealVoterIDs && len(o.PseudonymKey) < MinKeyBytes:
		return fmt.Errorf("pseudonym key has %d bytes, want at least %d", len(o.PseudonymKey), MinKeyBytes)
	case o.Resume && o.toStdout():
		return errors.New("--resume needs --out: standard output cannot be resumed")
	}
	return nil
}

// Report is the outcome of a run.
type Report struct {
	Source string `json:"source"`
	Format Format `json:"format"`
	Out    string `json:"out"`
	Rows   int64  `json:"rows"`
	// Units are token ranges (table) or index buckets (poll); Resumed of
	// them were done by an earlier, interrupted run.
	Units   int `json:"units"`
	Resumed int `json:"resumed"`
	// Orphans are index rows without a vote row (poll export), skipped.
	Orphans    int64 `json:"orphans"`
	Bytes      int64 `json:"bytes"`
	DurationMS int64 `json:"duration_ms"`
}

// Source reads the vote rows as ballots (cassandra.VoteSource).
type Source interface {
	// Plan is the token ranges of a table export of at least splits.
	Plan(ctx context.Context, splits int) []scan.Range
	// Range reads one token range.
	Range(ctx context.Context, r scan.Range, cons scan.Consistency, fn func(vote.Ballot) error) error
	// Buckets is a poll's index bucket count; poll.ErrNotFound when the
	// poll does not exist.
	Buckets(ctx context.Context, pollID id.ID) (int, error)
	// Bucket reads the vote rows one index bucket names, and counts the
	// index rows without a vote row (orphans).
	Bucket(ctx context.Context, pollID id.ID, bucket int, cons scan.Consistency, fn func(vote.Ballot) error) (orphans int64, err error)
}

// Deps are what a run reads through.
type Deps struct {
	Source Source
	// Stdout receives an export without Out.
	Stdout  io.Writer
	Log     *zap.Logger
	Metrics *Metrics
	Now     func() time.Time
}
