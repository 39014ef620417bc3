package cassandra

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/retry"
)

// maxLWTAttempts bounds re-issuing an insert whose outcome was unknown and
// that a serial read then showed had not applied.
const maxLWTAttempts = 3

// outcomeUnknown reports whether a failed conditional write may still have
// applied: a write timeout, a CAS-unknown answer, or no answer at all,
// including a connection that closed or failed while the request was on it
// (the node may have applied it and died, or the reply was lost). Such a
// write must be resolved by a SERIAL read, never guessed: answered as a
// plain failure, a sync vote got 503 while its row could exist, uncounted.
func outcomeUnknown(err error) bool {
	var (
		wt *gocql.RequestErrWriteTimeout
		cu *gocql.RequestErrCASWriteUnknown
		ne net.Error
	)
	return errors.As(err, &wt) || errors.As(err, &cu) ||
		errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, gocql.ErrConnectionClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// insertIfAbsent is one INSERT ... IF NOT EXISTS and how to settle it when
// the cluster does not say whether it applied. Every conditional insert of
// this package (a vote, a poll's create key, a user's email and username)
// goes through run.
type insertIfAbsent struct {
	// op names the write in errors: "insert vote", "claim email".
	op string
	// attempt builds one try: the conditional insert, built with
	// InsertBuilder().Unique() and its values bound, and how to recognise,
	// in a row read back by column name, the row this try wrote. It is
	// called again for every re-issue, so a try may carry fresh values.
	attempt func(ctx context.Context) (insert *gocqlx.Queryx, ours func(row map[string]any) bool)
	// read selects the key's row; run reads it at serial consistency.
	read   func(ctx context.Context) *gocqlx.Queryx
	serial gocql.SerialConsistency
	// reissueAfterFailedRead says what a failing serial read leads to: a
	// backoff and another try (votes, which the worker would otherwise
	// retry whole), or an error at once (claims, answered to a waiting
	// client).
	reissueAfterFailedRead bool
	// unknown, when set, hears of every unknown outcome (a metric).
	unknown func()
}

// run issues the insert. applied reports that this call's row is stored;
// stored is the row found instead (by column name), or the row a serial read
// found when it settled an unknown outcome; it is nil when the insert
// applied outright.
//
// An unknown outcome (write timeout, CAS unknown, no response) is settled by
// a read at serial consistency, which completes any in-flight Paxos round on
// the partition: the row is this try's (applied), another (not applied), or
// absent, and then the insert is issued again, at most maxLWTAttempts times
// in all.
func (w insertIfAbsent) run(ctx context.Context) (applied bool, stored map[string]any, err error) {
	var lastErr error
	for attempt := 0; attempt < maxLWTAttempts; attempt++ {
		insert, ours := w.attempt(ctx)
		applied, existing, err := execCAS(insert)
		if err == nil {
			if applied {
				return true, nil, nil
			}
			return false, existing, nil
		}
		if !outcomeUnknown(err) || ctx.Err() != nil {
			return false, nil, apperr.Unavailable(w.op, err)
		}
		if w.unknown != nil {
			w.unknown()
		}
		lastErr = err
		row := map[string]any{}
		rerr := mapScan(w.read(ctx).Consistency(gocql.Consistency(w.serial)), row)
		switch {
		case rerr == nil:
			return ours(row), row, nil
		case errors.Is(rerr, gocql.ErrNotFound):
			continue // not applied: issue it again
		case !w.reissueAfterFailedRead:
			return false, nil, apperr.Unavailable("resolve "+w.op, rerr)
		}
		lastErr = rerr
		if err := retry.Sleep(ctx, time.Duration(50*(attempt+1))*time.Millisecond); err != nil {
			return false, nil, apperr.Unavailable(w.op, err)
		}
	}
	return false, nil, apperr.Unavailable(w.op+": outcome unresolved", lastErr)
}

// execCAS runs a conditional statement. When it did not apply, existing
// holds the row that stopped it. gocql's MapScanCAS reads the [applied]
// column and the existing row by name, which is correct on both Cassandra
// and ScyllaDB (their result metadata differ in column order); gocqlx's CAS
// helpers have been reported to misread it on Cassandra, so they are not
// used (docs/architecture.md).
func execCAS(q *gocqlx.Queryx) (applied bool, existing map[string]any, err error) {
	if err := q.Err(); err != nil {
		return false, nil, err
	}
	existing = map[string]any{}
	applied, err = q.MapScanCAS(existing)
	return applied, existing, err
}

// mapScan reads the first row by column name, after any binding error.
func mapScan(q *gocqlx.Queryx, row map[string]any) error {
	if err := q.Err(); err != nil {
		return err
	}
	return q.MapScan(row)
}
