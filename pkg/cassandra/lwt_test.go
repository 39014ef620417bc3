package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/id"
)

// Which failed conditional writes are settled by a serial read (the write
// may have applied) and which are plain failures (it was never sent, or the
// cluster said no).
func TestOutcomeUnknown(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"write timeout", &gocql.RequestErrWriteTimeout{}, true},
		{"CAS write unknown", &gocql.RequestErrCASWriteUnknown{}, true},
		{"no response in time", gocql.ErrTimeoutNoResponse, true},
		{"deadline", context.DeadlineExceeded, true},
		{"connection closed waiting for the reply", gocql.ErrConnectionClosed, true},
		{"connection closed, wrapped", fmt.Errorf("insert vote: %w", gocql.ErrConnectionClosed), true},
		{"peer closed mid-frame", io.ErrUnexpectedEOF, true},
		{"peer closed", io.EOF, true},
		{"connection reset", reset, true},
		{"broken pipe", syscall.EPIPE, true},
		{"unavailable (never tried)", &gocql.RequestErrUnavailable{}, false},
		{"no hosts", gocql.ErrNoConnections, false},
		{"invalid query", errors.New("Undefined column name x"), false},
		{"cancelled by the caller", context.Canceled, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := outcomeUnknown(c.err); got != c.want {
				t.Fatalf("outcomeUnknown(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// A map scan's uuid is a gocql.UUID; the settle step recognises its own
// write by comparing it with an id.ID, which only mapID makes equal.
func TestMapIDComparesWithID(t *testing.T) {
	want := id.New()
	row := map[string]any{"write_id": gocql.UUID(want)}
	if row["write_id"] == any(want) {
		t.Fatal("interface comparison unexpectedly equal; the test no longer guards anything")
	}
	if mapID(row["write_id"]) != want {
		t.Fatalf("mapID(%v) != %v", row["write_id"], want)
	}
}
