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
	closed := base
	closed.ClosedAt = closedAt
	grace := 10 * time.Second
	tests := []struct {
		name    string
		p       poll.Poll
		at      time.Time // accepted
		seen    time.Time // the API's view of the poll
		version int
		opts    []id.ID
		want    error
	}{
		{"open poll", base, start.Add(time.Minute), start, 2, []id.ID{opt}, nil},
		{"options replaced since", base, start.Add(time.Minute), start, 1, []id.ID{opt}, poll.ErrOptionsChanged},
		{"option the poll lacks", base, start.Add(time.Minute), start, 2, []id.ID{id.New()}, ErrInvalidOption},
		{"before start", base, start.Add(-time.Second), start, 2, []id.ID{opt}, poll.ErrNotActive},
		{"after end", base, base.EndTime, start, 2, []id.ID{opt}, poll.ErrNotActive},
		{"accepted before the close", closed, closedAt.Add(-time.Second), start, 2, []id.ID{opt}, nil},
		{"just after the close on an older view", closed, closedAt.Add(2 * time.Second), closedAt.Add(-time.Second), 2, []id.ID{opt}, nil},
		{"after the close on a view that saw it", closed, closedAt.Add(2 * time.Second), closedAt, 2, []id.ID{opt}, poll.ErrNotActive},
		{"past the grace", closed, closedAt.Add(grace + time.Second), closedAt.Add(-time.Second), 2, []id.ID{opt}, poll.ErrNotActive},
		{"no view recorded", closed, closedAt.Add(time.Second), time.Time{}, 2, []id.ID{opt}, poll.ErrNotActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Ballot{OptionIDs: tc.opts, VotedAt: tc.at}
			err := Admissible(&tc.p, b, tc.seen, tc.version, grace)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Admissible = %v, want %v", err, tc.want)
			}
		})
	}
}
