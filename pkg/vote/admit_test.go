package vote

import (
	"errors"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

func TestAdmissible(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	opt := id.New()
	base := poll.Poll{StartTime: start, EndTime: start.Add(24 * time.Hour), OptionsVersion: 2,
		Options: []poll.Option{{ID: opt}}}
	closedAt := start.Add(time.Hour)
	base.Version = 4
	closed := base
	closed.ClosedAt, closed.Version = closedAt, 5
	grace := 10 * time.Second
	tests := []struct {
		name    string
		p       poll.Poll
		at      time.Time // accepted
		seen    int       // the poll version the API's view had
		version int
		opts    []id.ID
		want    error
	}{
		{"open poll", base, start.Add(time.Minute), 4, 2, []id.ID{opt}, nil},
		{"options replaced since", base, start.Add(time.Minute), 4, 1, []id.ID{opt}, poll.ErrOptionsChanged},
		{"option the poll lacks", base, start.Add(time.Minute), 4, 2, []id.ID{id.New()}, ErrInvalidOption},
		{"before start", base, start.Add(-time.Second), 4, 2, []id.ID{opt}, poll.ErrNotActive},
		{"after end", base, base.EndTime, 4, 2, []id.ID{opt}, poll.ErrNotActive},
		{"accepted before the close", closed, closedAt.Add(-time.Second), 4, 2, []id.ID{opt}, nil},
		{"just after the close on an older view", closed, closedAt.Add(2 * time.Second), 4, 2, []id.ID{opt}, nil},
		// The view was read after closed_at was stamped but before the
		// close was written (or on a clock ahead of the closer's): it saw
		// the poll open at version 4, so the ballot counts.
		{"on a view read in the close's instant", closed, closedAt.Add(time.Millisecond), 4, 2, []id.ID{opt}, nil},
		{"after the close on a view that saw it", closed, closedAt.Add(2 * time.Second), 5, 2, []id.ID{opt}, poll.ErrNotActive},
		{"past the grace", closed, closedAt.Add(grace + time.Second), 4, 2, []id.ID{opt}, poll.ErrNotActive},
		{"a message older than versions, within the grace", closed, closedAt.Add(time.Second), 0, 2, []id.ID{opt}, nil},
		{"a message older than versions, past the grace", closed, closedAt.Add(grace + time.Second), 0, 2, []id.ID{opt}, poll.ErrNotActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Ballot{OptionIDs: tc.opts, VotedAt: tc.at}
			err := Admissible(&tc.p, b, Judged{PollVersion: tc.seen, OptionsVersion: tc.version}, grace)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Admissible = %v, want %v", err, tc.want)
			}
		})
	}
}
