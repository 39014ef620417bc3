package cassandra

import (
	"context"
	"errors"

	"github.com/gocql/gocql"
)

// outcomeUnknown reports whether a failed conditional write may still have
// applied: a write timeout, a CAS-unknown answer, or no answer at all. Such
// a write must be resolved by a SERIAL read, never guessed.
func outcomeUnknown(err error) bool {
	var (
		wt *gocql.RequestErrWriteTimeout
		cu *gocql.RequestErrCASWriteUnknown
	)
	return errors.As(err, &wt) || errors.As(err, &cu) ||
		errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, context.DeadlineExceeded)
}

// casInsert runs an INSERT ... IF NOT EXISTS. When it did not apply,
// existing holds the row that won. gocql's MapScanCAS reads the [applied]
// column and the existing row by name, which is correct on both Cassandra
// and ScyllaDB (their result metadata differ in column order).
func casInsert(q *gocql.Query) (applied bool, existing map[string]any, err error) {
	existing = map[string]any{}
	applied, err = q.MapScanCAS(existing)
	return applied, existing, err
}

// serialRead reads at the session's serial consistency, which completes any
// in-flight Paxos round on the partition first: after it, an unknown LWT
// outcome is known.
func serialRead(q *gocql.Query, serial gocql.SerialConsistency) *gocql.Query {
	return q.Consistency(gocql.Consistency(serial))
}
