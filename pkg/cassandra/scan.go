package cassandra

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/retry"
)

// VoteRow is one row of votes as the scan reads it.
type VoteRow struct {
	PollID, VoterID, VoteID, RequestID gocql.UUID
	OptionIDs                          []gocql.UUID
	IdempotencyKey                     string
	VotedAt                            time.Time
}

// ScanOptions tunes ScanVotes. Zero values take the defaults.
type ScanOptions struct {
	// Splits is how many contiguous token ranges the ring is cut into
	// (default 64, and never fewer than the ring's own token ranges).
	Splits int
	// Workers bounds how many ranges are read at once (default 8).
	Workers int
	// Consistency of the range reads (default LOCAL_QUORUM).
	Consistency gocql.Consistency
	// Progress, if set, is called after each range is read, never from two
	// goroutines at once.
	Progress func(done, total int)
}

const (
	defaultScanSplits  = 64
	defaultScanWorkers = 8
	scanPageSize       = 1000
	scanPageAttempts   = 8
)

// scanColumns are the columns of votes a scan reads.
var scanColumns = []string{"poll_id", "voter_id", "option_ids", "vote_id", "request_id", "idempotency_key", "voted_at"}

// scanVotes reads one token range (lo, hi] of votes; qb's token builder
// compares token(poll_id, voter_id) with bound token values.
var scanVotes = newStatement(qb.Select(votesTable.Name()).Columns(scanColumns...).Where(
	qb.Token(votesTable.Metadata().PartKey...).GtValueNamed("lo"),
	qb.Token(votesTable.Metadata().PartKey...).LtOrEqValueNamed("hi")).ToCql())

// scanVotesFirst is the statement of the ring's first range, whose lower
// bound is the minimum token itself.
var scanVotesFirst = newStatement(qb.Select(votesTable.Name()).Columns(scanColumns...).Where(
	qb.Token(votesTable.Metadata().PartKey...).GtOrEqValueNamed("lo"),
	qb.Token(votesTable.Metadata().PartKey...).LtOrEqValueNamed("hi")).ToCql())

// ringTokens reads a node's tokens from the system tables.
var ringTokens = []statement{
	newStatement(qb.Select("system.local").Columns("tokens").ToCql()),
	newStatement(qb.Select("system.peers").Columns("tokens").ToCql()),
}

// tokenRange is a slice of the Murmur3 ring: (Lo, Hi], or [Lo, Hi] when
// First is set.
type tokenRange struct {
	Lo, Hi int64
	First  bool
}

// splitRing cuts the whole Murmur3 ring, -2^63 .. 2^63-1, into n contiguous
// ranges of (almost) equal width that together cover every token once.
func splitRing(n int) []tokenRange {
	n = max(n, 1)
	bounds := make([]int64, n+1)
	for i := 0; i < n; i++ {
		// i * 2^64 / n, computed in 128 bits; i < n keeps the quotient in 64.
		off, _ := bits.Div64(uint64(i), 0, uint64(n))
		bounds[i] = int64(off ^ (1 << 63)) // shift [0, 2^64) onto [-2^63, 2^63)
	}
	bounds[n] = math.MaxInt64
	ranges := make([]tokenRange, n)
	for i := range ranges {
		ranges[i] = tokenRange{Lo: bounds[i], Hi: bounds[i+1], First: i == 0}
	}
	return ranges
}

// ringTokenCount asks the cluster how many tokens (and so token ranges) its
// ring has: the node's own tokens plus its peers'. Errors count as zero; the
// scan then splits uniformly by the requested count alone.
func ringTokenCount(ctx context.Context, s gocqlx.Session) int {
	n := 0
	for _, stmt := range ringTokens {
		iter := stmt.query(ctx, s).Iter()
		var tokens []string
		for iter.Scan(&tokens) {
			n += len(tokens)
			tokens = nil
		}
		if err := iter.Close(); err != nil {
			return 0
		}
	}
	return n
}

// ScanVotes calls fn for every row of votes; fn may be called from several
// goroutines at once.
//
// It reads the table the way the Spark Cassandra connector does: the token
// ring is cut into contiguous ranges, each read with a paged range query,
// a bounded number at a time. A page is read whole before fn sees any of its
// rows, so a page that fails is read again without handing fn a row twice.
// The first error from fn or from a range that keeps failing stops the scan.
func ScanVotes(ctx context.Context, s gocqlx.Session, opts ScanOptions, fn func(VoteRow) error) error {
	splits := opts.Splits
	if splits <= 0 {
		splits = defaultScanSplits
	}
	splits = max(splits, ringTokenCount(ctx, s))
	workers := opts.Workers
	if workers <= 0 {
		workers = defaultScanWorkers
	}
	cons := opts.Consistency
	if cons == gocql.Any { // the zero value; ANY is not a read consistency
		cons = gocql.LocalQuorum
	}
	ranges := splitRing(splits)

	var (
		mu   sync.Mutex
		done int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, r := range ranges {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := scanRange(gctx, s, r, cons, fn); err != nil {
				return err
			}
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, len(ranges))
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// A cancelled scan may have skipped ranges without any range failing.
	return ctx.Err()
}

// scanRange reads one token range page by page, retrying a failed page from
// its paging state.
func scanRange(ctx context.Context, s gocqlx.Session, r tokenRange, cons gocql.Consistency, fn func(VoteRow) error) error {
	stmt := scanVotes
	if r.First {
		stmt = scanVotesFirst
	}
	var state []byte
	for {
		rows, next, err := readPage(ctx, s, stmt, r, cons, state)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if err := fn(row); err != nil {
				return err
			}
		}
		if len(next) == 0 {
			return nil
		}
		state = next
	}
}

// readPage reads one page, trying again with capped backoff while the
// range's replicas do not answer.
func readPage(ctx context.Context, s gocqlx.Session, stmt statement, r tokenRange, cons gocql.Consistency, state []byte) ([]VoteRow, []byte, error) {
	var (
		rows []VoteRow
		next []byte
	)
	policy := retry.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Attempts: scanPageAttempts}
	err := retry.Do(ctx, policy, func(int) error {
		iter := stmt.query(ctx, s).BindMap(qb.M{"lo": r.Lo, "hi": r.Hi}).Consistency(cons).
			PageSize(scanPageSize).PageState(state).Iter()
		page := make([]VoteRow, 0, iter.NumRows())
		var row voteRow
		for iter.StructScan(&row) {
			page = append(page, row.toScanRow())
			row = voteRow{}
		}
		pageState := iter.PageState()
		if err := iter.Close(); err != nil {
			if ctx.Err() != nil {
				return retry.Permanent(ctx.Err())
			}
			return err
		}
		rows, next = page, pageState
		return nil
	}, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, apperr.Unavailable(fmt.Sprintf("scan votes tokens (%d, %d]", r.Lo, r.Hi), err)
	}
	return rows, next, nil
}
