package tally

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// TestVisible holds the rule to its table: every mode, for the owner, a
// caller who voted, a signed-in caller who did not, and a caller with no
// token, on a draft, an open and a closed poll.
func TestVisible(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	owner, voter, other := id.New(), id.New(), id.New()
	type who int
	const (
		isOwner who = iota
		isVoter
		isOther
		isAnon
	)
	whos := []struct {
		name     string
		w        who
		caller   id.ID
		signedIn bool
	}{
		{"owner", isOwner, owner, true}, {"voted", isVoter, voter, true},
		{"not voted", isOther, other, true}, {"no token", isAnon, id.ID{}, false},
	}
	phases := []struct {
		name       string
		start, end time.Time
		closedAt   time.Time
	}{
		{"draft", now.Add(time.Hour), now.Add(2 * time.Hour), time.Time{}},
		{"open", now.Add(-time.Hour), now.Add(time.Hour), time.Time{}},
		{"ended", now.Add(-2 * time.Hour), now.Add(-time.Hour), time.Time{}},
		{"closed by owner", now.Add(-time.Hour), now.Add(time.Hour), now.Add(-time.Minute)},
	}
	// want[mode][who] before close and after; "ended" and "closed by owner"
	// are after close, "draft" and "open" before.
	type pair struct{ before, after bool }
	want := map[poll.ResultsVisibility][4]pair{
		poll.ResultsAlways:     {{true, true}, {true, true}, {true, true}, {true, true}},
		poll.ResultsAfterVote:  {{true, true}, {true, true}, {false, true}, {false, true}},
		poll.ResultsAfterClose: {{true, true}, {false, true}, {false, true}, {false, true}},
		poll.ResultsOwnerOnly:  {{true, true}, {false, false}, {false, false}, {false, false}},
		// The zero Settings is after_vote, as the zero boolean was.
		"": {{true, true}, {true, true}, {false, true}, {false, true}},
	}
	for mode, row := range want {
		for _, ph := range phases {
			for _, w := range whos {
				after := ph.name == "ended" || ph.name == "closed by owner"
				expect := row[w.w].before
				if after {
					expect = row[w.w].after
				}
				name := fmt.Sprintf("%s/%s/%s", cmpMode(mode), ph.name, w.name)
				t.Run(name, func(t *testing.T) {
					p := poll.Poll{CreatorID: owner, StartTime: ph.start, EndTime: ph.end, ClosedAt: ph.closedAt,
						Settings: poll.Settings{ResultsVisibility: mode}}
					asked := false
					err := Visible(&p, w.caller, w.signedIn, now, func() (bool, error) {
						asked = true
						return w.caller == voter, nil
					})
					if got := err == nil; got != expect {
						t.Fatalf("visible = %v (%v), want %v", got, err, expect)
					}
					if err != nil && (!errors.Is(err, ErrResultsHidden) || apperr.CodeOf(err) != apperr.CodeResultsHidden) {
						t.Fatalf("refusal %v is not RESULTS_HIDDEN", err)
					}
					// Only after_vote before close, for a signed-in
					// non-owner, needs the lookup.
					needs := p.Settings.Visibility() == poll.ResultsAfterVote && !after && w.signedIn && w.w != isOwner
					if asked != needs {
						t.Fatalf("asked whether the caller voted: %v, want %v", asked, needs)
					}
				})
			}
		}
	}
}

func cmpMode(m poll.ResultsVisibility) string {
	if m == "" {
		return "zero"
	}
	return string(m)
}

func TestVisibleLookupFails(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	p := poll.Poll{CreatorID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Settings: poll.Settings{ResultsVisibility: poll.ResultsAfterVote}}
	boom := errors.New("cassandra down")
	err := Visible(&p, id.New(), true, now, func() (bool, error) { return false, boom })
	if !errors.Is(err, boom) || errors.Is(err, ErrResultsHidden) {
		t.Fatalf("Visible = %v, want the lookup's error, not a refusal", err)
	}
}

// TestHiddenMessages: each mode's refusal says why, in the envelope's
// message, under the one code.
func TestHiddenMessages(t *testing.T) {
	for _, err := range []error{errHiddenUntilVoted, errHiddenUntilClose, errHiddenOwnerOnly} {
		var coded *apperr.Error
		if !errors.As(err, &coded) || coded.Code != apperr.CodeResultsHidden || coded.Message != err.Error() {
			t.Fatalf("%v: coded %+v", err, coded)
		}
	}
}

// TestVisibleToCounts: the service applies the rule at its clock and counts
// each refusal under the poll's mode, and nothing for a poll shown.
func TestVisibleToCounts(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	s := NewService(Config{}, nil, downCache{}, downFence{}, nil, zap.NewNop(), func() time.Time { return now }, reg)
	p := poll.Poll{CreatorID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Settings: poll.Settings{ResultsVisibility: poll.ResultsOwnerOnly}}
	no := func() (bool, error) { return false, nil }
	if err := s.VisibleTo(&p, id.New(), true, no); !errors.Is(err, ErrResultsHidden) {
		t.Fatalf("VisibleTo = %v", err)
	}
	if err := s.VisibleTo(&p, p.CreatorID, true, no); err != nil {
		t.Fatalf("owner: %v", err)
	}
	p.Settings.ResultsVisibility = poll.ResultsAlways
	if err := s.VisibleTo(&p, id.New(), false, no); err != nil {
		t.Fatalf("always: %v", err)
	}
	if got := testutil.ToFloat64(s.m.hidden.WithLabelValues(string(poll.ResultsOwnerOnly))); got != 1 {
		t.Fatalf("owner_only refusals %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "tally_results_hidden_total"); err != nil || n != 3 {
		t.Fatalf("series %d (%v), want the three hiding modes", n, err)
	}
}
