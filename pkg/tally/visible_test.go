package tally

import (
	"errors"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

func TestVisible(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	owner, voter := id.New(), id.New()
	hidden := poll.Poll{CreatorID: owner, StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour)}
	shown := hidden
	shown.Settings.ShowResultsDuringVoting = true
	closed := hidden
	closed.EndTime = now.Add(-time.Minute)
	boom := errors.New("cassandra down")
	tests := []struct {
		name     string
		p        poll.Poll
		caller   id.ID
		signedIn bool
		voted    bool
		err      error
		want     error
		asked    bool
	}{
		{"shown while voting", shown, id.ID{}, false, false, nil, nil, false},
		{"closed poll", closed, id.ID{}, false, false, nil, nil, false},
		{"hidden, anonymous caller", hidden, id.ID{}, false, false, nil, ErrResultsHidden, false},
		{"hidden, owner", hidden, owner, true, false, nil, nil, false},
		{"hidden, voter who voted", hidden, voter, true, true, nil, nil, true},
		{"hidden, voter who did not", hidden, voter, true, false, nil, ErrResultsHidden, true},
		{"hidden, lookup fails", hidden, voter, true, false, boom, boom, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			err := Visible(&tc.p, tc.caller, tc.signedIn, now, func() (bool, error) { asked = true; return tc.voted, tc.err })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Visible = %v, want %v", err, tc.want)
			}
			if asked != tc.asked {
				t.Fatalf("asked whether the caller voted: %v, want %v", asked, tc.asked)
			}
		})
	}
}
