package cassandra

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

const (
	defaultScanSplits  = 64
	defaultScanWorkers = 8
	scanPageSize       = 1000
	scanPageAttempts   = 8
)

// scanColumns are the columns of votes a scan reads, and when the row was
// written: voted_at is when the vote was accepted, which for a backlog
// applied late is long before the row existed.
var scanColumns = []string{"poll_id", "voter_id", "option_ids", "vote_id", "request_id", "idempotency_key", "voted_at",
	"anonymous", "ip", "user_agent", "flags", "scores", "commitment", "WRITETIME(vote_id) AS written_at", "version", "revoked", "changed_at"}

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

// splitSpan cuts (lo, hi] into k contiguous ranges of (almost) equal width;
// the first is inclusive of lo when first is set.
func splitSpan(lo, hi int64, k uint64, first bool) []scan.Range {
	k = max(k, 1)
	width := uint64(hi) - uint64(lo)
	out := make([]scan.Range, k)
	prev := lo
	for j := uint64(1); j <= k; j++ {
		next := hi
		if j < k {
			// lo + width*j/k in 128 bits; the quotient is below width.
			h, l := bits.Mul64(width, j)
			q, _ := bits.Div64(h, l, k)
			next = int64(uint64(lo) + q)
		}
		out[j-1] = scan.Range{Lo: prev, Hi: next, First: first && j == 1}
		prev = next
	}
	return out
}

// splitRing cuts the whole Murmur3 ring, -2^63 .. 2^63-1, into n contiguous
// ranges of (almost) equal width that together cover every token once.
func splitRing(n int) []scan.Range {
	return splitSpan(math.MinInt64, math.MaxInt64, uint64(max(n, 1)), true)
}

// planRanges cuts the ring at the cluster's tokens, so that no range spans
// two nodes' token ranges (each is served by one replica set, as in the
// Spark Cassandra connector's partitioner), then cuts each of those into
// pieces in proportion to its width, so that there are at least splits in
// all and they are of about equal width.
func planRanges(tokens []int64, splits int) []scan.Range {
	splits = max(splits, 1)
	sorted := slices.Clone(tokens)
	slices.Sort(sorted)
	bounds := []int64{math.MinInt64}
	for _, t := range slices.Compact(sorted) {
		if t != math.MinInt64 && t != math.MaxInt64 {
			bounds = append(bounds, t)
		}
	}
	bounds = append(bounds, math.MaxInt64)
	var out []scan.Range
	for i := 0; i+1 < len(bounds); i++ {
		lo, hi := bounds[i], bounds[i+1]
		// ceil(splits * width / 2^64) pieces, at least one.
		h, l := bits.Mul64(uint64(splits), uint64(hi)-uint64(lo))
		if l != 0 {
			h++
		}
		out = append(out, splitSpan(lo, hi, h, i == 0)...)
	}
	return out
}

// readRingTokens asks the cluster for its ring: the node's own tokens plus
// its peers'.
func readRingTokens(ctx context.Context, s gocqlx.Session) ([]int64, error) {
	var out []int64
	for _, stmt := range ringTokens {
		iter := stmt.query(ctx, s).Iter()
		var tokens []string
		for iter.Scan(&tokens) {
			for _, t := range tokens {
				v, err := strconv.ParseInt(t, 10, 64)
				if err != nil {
					_ = iter.Close()
					return nil, fmt.Errorf("token %q is not a Murmur3 token: %w", t, err)
				}
				out = append(out, v)
			}
			tokens = nil
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PlanScan is the token ranges a scan of at least splits ranges (0: 64)
// reads: the cluster's own token ranges, each cut into pieces (planRanges).
// When the ring cannot be read it cuts the ring uniformly.
func PlanScan(ctx context.Context, s gocqlx.Session, splits int) []scan.Range {
	if splits <= 0 {
		splits = defaultScanSplits
	}
	tokens, err := readRingTokens(ctx, s)
	if err != nil {
		return splitRing(splits)
	}
	return planRanges(tokens, splits)
}

// ScanVotes calls fn for every row of votes; fn may be called from several
// goroutines at once.
//
// It reads the table the way the Spark Cassandra connector does: the token
// ring is cut into contiguous ranges at the cluster's tokens and again
// within them (PlanScan), each read with a paged range query (ScanRange), a
// bounded number at a time. The first error from fn or from a range that
// keeps failing stops the scan.
func ScanVotes(ctx context.Context, s gocqlx.Session, opts scan.Options, fn func(vote.Ballot) error) error {
	ranges := opts.Ranges
	if ranges == nil {
		ranges = PlanScan(ctx, s, opts.Splits)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = defaultScanWorkers
	}
	cons := opts.Consistency

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
			if err := ScanRange(gctx, s, r, cons, fn); err != nil {
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

// readConsistency is the driver's level for c (LOCAL_QUORUM when empty, or
// when c names no level: the CLI refuses those before a scan starts).
func readConsistency(c scan.Consistency) gocql.Consistency {
	level, err := gocql.ParseConsistencyWrapper(string(c.OrDefault()))
	if err != nil || level == gocql.Any {
		return gocql.LocalQuorum
	}
	return level
}

// ScanRange reads one token range of votes page by page and calls fn for
// each row, in the calling goroutine. A page is read whole before fn sees
// any of its rows, so a page that fails is read again from its paging state
// without handing fn a row twice.
func ScanRange(ctx context.Context, s gocqlx.Session, r scan.Range, cons scan.Consistency, fn func(vote.Ballot) error) error {
	stmt := scanVotes
	if r.First {
		stmt = scanVotesFirst
	}
	q := stmt.query(ctx, s).BindMap(qb.M{"lo": r.Lo, "hi": r.Hi}).Consistency(readConsistency(cons))
	var state []byte
	for {
		rows, next, err := readPage(ctx, "scan votes tokens "+r.String(), q, state, voteRow.toScanRow)
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

// readPage reads one page of q from state, converting each row struct R
// with conv, and tries again with capped backoff while the replicas do not
// answer.
func readPage[R, T any](ctx context.Context, what string, q *gocqlx.Queryx, state []byte, conv func(R) T) ([]T, []byte, error) {
	var (
		rows []T
		next []byte
	)
	policy := retry.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Attempts: scanPageAttempts}
	err := retry.Do(ctx, policy, func(int) error {
		iter := q.PageSize(scanPageSize).PageState(state).Iter()
		page := make([]T, 0, iter.NumRows())
		var row R
		for iter.StructScan(&row) {
			page = append(page, conv(row))
			var zero R
			row = zero
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
		return nil, nil, apperr.Unavailable(what, err)
	}
	return rows, next, nil
}
