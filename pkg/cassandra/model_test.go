package cassandra

import (
	"testing"

	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/poll"
)

// TestPollRowVisibility: the mode round-trips through the row with the
// boolean written beside it; a row from before 014 (results_visibility
// null), or whose boolean an older process changed since, reads the mode
// its boolean says.
func TestPollRowVisibility(t *testing.T) {
	for _, v := range []poll.ResultsVisibility{poll.ResultsAlways, poll.ResultsAfterVote, poll.ResultsAfterClose, poll.ResultsOwnerOnly} {
		t.Run(string(v), func(t *testing.T) {
			r := toPollRow(&poll.Poll{Settings: poll.Settings{ResultsVisibility: v}})
			if r.ResultsVisibility == nil || *r.ResultsVisibility != string(v) || r.ShowResultsDuringVoting != (v == poll.ResultsAlways) {
				t.Fatalf("row: results_visibility %v, show_results_during_voting %v", deref(r.ResultsVisibility), r.ShowResultsDuringVoting)
			}
			var p poll.Poll
			r.addToPoll(&p)
			if p.Settings.ResultsVisibility != v {
				t.Fatalf("read back %q", p.Settings.ResultsVisibility)
			}
		})
	}
	for _, tc := range []struct {
		show bool
		col  *string
		want poll.ResultsVisibility
	}{
		{true, nil, poll.ResultsAlways},
		{false, nil, poll.ResultsAfterVote},
		{false, nullable("bogus"), poll.ResultsAfterVote},
		{false, nullable("owner_only"), poll.ResultsOwnerOnly},
		{false, nullable("after_close"), poll.ResultsAfterClose},
		// A boolean that disagrees was written after the mode, by a
		// process that knows only the boolean.
		{true, nullable("owner_only"), poll.ResultsAlways},
		{false, nullable("always"), poll.ResultsAfterVote},
	} {
		var p poll.Poll
		pollRow{ShowResultsDuringVoting: tc.show, ResultsVisibility: tc.col}.addToPoll(&p)
		if p.Settings.ResultsVisibility != tc.want {
			t.Fatalf("show=%v results_visibility=%v reads %q, want %q", tc.show, deref(tc.col), p.Settings.ResultsVisibility, tc.want)
		}
	}
}

// The method is written explicitly, also for a poll that named it by the
// boolean alone; a row from before 016 (method and min null) reads the
// method the boolean names and no minimum.
func TestPollRowMethod(t *testing.T) {
	r := toPollRow(&poll.Poll{Settings: poll.Settings{AllowMultipleOptions: true, MinVotesPerUser: 2}})
	if deref(r.Method) != "approval" || r.MinVotesPerUser == nil || *r.MinVotesPerUser != 2 {
		t.Fatalf("row: method %q min %v", deref(r.Method), r.MinVotesPerUser)
	}
	var p poll.Poll
	r.addToPoll(&p)
	if p.Settings.CountingMethod() != count.Approval || p.Settings.MinVotesPerUser != 2 {
		t.Fatalf("read back %+v", p.Settings)
	}
	var old poll.Poll
	pollRow{AllowMultipleOptions: false}.addToPoll(&old)
	if old.Settings.CountingMethod() != count.Plurality || old.Settings.MinVotesPerUser != 0 || old.MinChoices() != 1 {
		t.Fatalf("pre-016 row read %+v", old.Settings)
	}
}
