//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// settingsOf reads settings.results_visibility and the derived boolean
// from a poll document.
func settingsOf(t *testing.T, r testenv.Response) (string, bool) {
	t.Helper()
	s, ok := r.Body["settings"].(map[string]any)
	if !ok {
		t.Fatalf("no settings: %s", r.Raw)
	}
	mode, _ := s["results_visibility"].(string)
	show, ok := s["show_results_during_voting"].(bool)
	if !ok {
		t.Fatalf("no show_results_during_voting: %s", r.Raw)
	}
	return mode, show
}

// resultsAnswer is what GET results says to a caller: 200, or the refusal
// (403 RESULTS_HIDDEN) and nothing else.
func resultsAnswer(t *testing.T, c *testenv.Client, pollID, token, mode string) bool {
	t.Helper()
	r := c.Do("GET", "/v1/polls/"+pollID+"/results?tally="+mode, token, nil)
	switch {
	case r.Status == http.StatusOK:
		return true
	case r.Status == http.StatusForbidden && r.Code() == "RESULTS_HIDDEN":
		return false
	}
	t.Fatalf("results (%s): %d %s", mode, r.Status, r.Raw)
	return false
}

// TestResultsVisibilityModes: for each mode, a poll with one vote; what its
// owner, the voter, a signed-in caller who did not vote and a caller with
// no token get from GET results (live and final), before and after the
// owner closes it; and what the poll document says.
func TestResultsVisibilityModes(t *testing.T) {
	e := newEnv(t)
	type seen struct{ owner, voter, other, anon bool }
	for _, tc := range []struct {
		mode          string
		before, after seen
	}{
		{"always", seen{true, true, true, true}, seen{true, true, true, true}},
		{"after_vote", seen{true, true, false, false}, seen{true, true, true, true}},
		{"after_close", seen{true, false, false, false}, seen{true, true, true, true}},
		{"owner_only", seen{true, false, false, false}, seen{true, false, false, false}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			owner, _ := e.c.Account()
			voter, _ := e.c.Account()
			other, _ := e.c.Account()
			pollID, opts := e.c.Poll(owner, map[string]any{"results_visibility": tc.mode})
			doc := e.c.Do("GET", "/v1/polls/"+pollID, "", nil).Must(t, http.StatusOK)
			if mode, show := settingsOf(t, doc); mode != tc.mode || show != (tc.mode == "always") {
				t.Fatalf("document: results_visibility %q, show_results_during_voting %v", mode, show)
			}
			e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
			check := func(when string, want seen) {
				t.Helper()
				for _, m := range []string{"live", "final"} {
					got := seen{
						owner: resultsAnswer(t, e.c, pollID, owner, m),
						voter: resultsAnswer(t, e.c, pollID, voter, m),
						other: resultsAnswer(t, e.c, pollID, other, m),
						anon:  resultsAnswer(t, e.c, pollID, "", m),
					}
					if got != want {
						t.Fatalf("%s, tally=%s: sees %+v, want %+v", when, m, got, want)
					}
				}
			}
			check("before close", tc.before)
			if !tc.before.other {
				r := e.c.Do("GET", "/v1/polls/"+pollID+"/results", other, nil)
				if msg := r.Body["error"].(map[string]any)["message"].(string); msg == "" {
					t.Fatalf("refusal without a message: %s", r.Raw)
				}
			}
			e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
			check("after close", tc.after)
			// The owner's count is the truth in every mode.
			if total, _ := e.c.Results(owner, pollID, "final"); total != 1 {
				t.Fatalf("final total %d, want 1", total)
			}
		})
	}
	if n := metric(t, e.app.Registry, "tally_results_hidden_total", "mode", "owner_only"); n == 0 {
		t.Fatal("owner_only refusals not counted")
	}
}

// TestResultsVisibilityAlias: show_results_during_voting is still taken on
// create and PATCH (true: always, false: after_vote) and still shown
// (true only for always); a pair that disagrees is 400 naming the alias,
// one that agrees (as a document sent back) is taken; an unknown mode is
// 400 naming results_visibility. Both columns are written.
func TestResultsVisibilityAlias(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	mode := func(pollID string) (string, bool) {
		t.Helper()
		return settingsOf(t, e.c.Do("GET", "/v1/polls/"+pollID, owner, nil).Must(t, http.StatusOK))
	}
	stored := func(pollID string) (string, bool) {
		t.Helper()
		pid, _ := id.Parse(pollID)
		var (
			v    *string
			show bool
		)
		if err := e.app.CQL.Session.Query(`SELECT results_visibility, show_results_during_voting FROM polls WHERE poll_id = ? LIMIT 1`,
			pid).Scan(&v, &show); err != nil {
			t.Fatalf("read row: %v", err)
		}
		if v == nil {
			return "", show
		}
		return *v, show
	}
	want := func(pollID, wantMode string) {
		t.Helper()
		if m, show := mode(pollID); m != wantMode || show != (wantMode == "always") {
			t.Fatalf("document: %q %v, want %q", m, show, wantMode)
		}
		if m, show := stored(pollID); m != wantMode || show != (wantMode == "always") {
			t.Fatalf("row: results_visibility %q show_results_during_voting %v, want %q", m, show, wantMode)
		}
	}

	off, _ := e.c.Poll(owner, map[string]any{"show_results_during_voting": false})
	want(off, "after_vote")
	on, _ := e.c.Poll(owner, map[string]any{"show_results_during_voting": true})
	want(on, "always")
	def, _ := e.c.Poll(owner, nil)
	want(def, "always")
	closeOnly, _ := e.c.Poll(owner, map[string]any{"results_visibility": "after_close", "show_results_during_voting": false})
	want(closeOnly, "after_close")

	patch := func(pollID string, settings map[string]any) testenv.Response {
		return e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": settings})
	}
	patch(closeOnly, map[string]any{"show_results_during_voting": true}).Must(t, http.StatusOK)
	want(closeOnly, "always")
	patch(closeOnly, map[string]any{"show_results_during_voting": false}).Must(t, http.StatusOK)
	want(closeOnly, "after_vote")
	patch(closeOnly, map[string]any{"results_visibility": "owner_only"}).Must(t, http.StatusOK)
	want(closeOnly, "owner_only")
	// A document's settings sent back as they were read.
	doc := e.c.Do("GET", "/v1/polls/"+closeOnly, owner, nil).Must(t, http.StatusOK)
	patch(closeOnly, doc.Body["settings"].(map[string]any)).Must(t, http.StatusOK)
	want(closeOnly, "owner_only")

	for _, tc := range []struct {
		settings map[string]any
		field    string
	}{
		{map[string]any{"results_visibility": "after_close", "show_results_during_voting": true}, "settings.show_results_during_voting"},
		{map[string]any{"results_visibility": "always", "show_results_during_voting": false}, "settings.show_results_during_voting"},
		{map[string]any{"results_visibility": "voters"}, "settings.results_visibility"},
		{map[string]any{"results_visibility": ""}, "settings.results_visibility"},
	} {
		for name, r := range map[string]testenv.Response{
			"create": e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": "t",
				"options": []map[string]any{{"text": "a"}, {"text": "b"}}, "settings": tc.settings}),
			"patch": patch(closeOnly, tc.settings),
		} {
			errBody, _ := r.Body["error"].(map[string]any)
			if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || errBody["field"] != tc.field {
				t.Fatalf("%s with %v: %d %s, want 400 naming %s", name, tc.settings, r.Status, r.Raw, tc.field)
			}
		}
	}
	want(closeOnly, "owner_only")
}

// TestResultsVisibilityOldRow: a poll row written before results_visibility
// existed (the column null, only the boolean set) reads as the mode the
// boolean says, in the document and in who sees the results; so does a row
// whose boolean a process that knows only the boolean changed since.
func TestResultsVisibilityOldRow(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	outsider, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, map[string]any{"results_visibility": "owner_only"})
	pid, _ := id.Parse(pollID)
	// An older process sets the boolean alone.
	if err := e.app.CQL.Session.Query(`UPDATE polls SET show_results_during_voting = true WHERE poll_id = ?`, pid).Exec(); err != nil {
		t.Fatalf("write the boolean alone: %v", err)
	}
	if m, _ := settingsOf(t, e.c.Do("GET", "/v1/polls/"+pollID, owner, nil).Must(t, http.StatusOK)); m != "always" {
		t.Fatalf("owner_only row whose boolean was set true since reads %q, want always", m)
	}
	old := func(show bool) {
		t.Helper()
		if err := e.app.CQL.Session.Query(`UPDATE polls SET results_visibility = null, show_results_during_voting = ? WHERE poll_id = ?`,
			show, pid).Exec(); err != nil {
			t.Fatalf("write an old-style row: %v", err)
		}
	}
	for _, tc := range []struct {
		show bool
		mode string
	}{{false, "after_vote"}, {true, "always"}} {
		old(tc.show)
		if m, show := settingsOf(t, e.c.Do("GET", "/v1/polls/"+pollID, owner, nil).Must(t, http.StatusOK)); m != tc.mode || show != tc.show {
			t.Fatalf("old row with show_results_during_voting=%v reads %q %v, want %q", tc.show, m, show, tc.mode)
		}
		// The results' view of the poll follows within its refresh period.
		testenv.Eventually(t, 5*time.Second, func() error {
			if got := resultsAnswer(t, e.c, pollID, outsider, "live"); got != tc.show {
				return fmt.Errorf("an outsider sees results: %v, want %v", got, tc.show)
			}
			return nil
		})
	}
}

// TestResultsVisibilityPatchReachesAnotherAPI: two API processes on one
// stack. The owner moves a running poll from always to owner_only through
// A; B, which holds a warm view of the poll whose refresh period is far
// above a second, must refuse an outsider's results (REST and the live
// handshake) within 1 s, and close the outsider's open socket with 4403.
func TestResultsVisibilityPatchReachesAnotherAPI(t *testing.T) {
	mod := func(c *config.Config) {
		c.Poll.CacheTTL = time.Minute
		c.HTTP.LiveRecheck = 200 * time.Millisecond
	}
	a := newLimitsEnv(t, mod)
	b := serveLimits(t, a.cfg)

	owner, _ := a.c.Account()
	outsider, _ := a.c.Account()
	pollID, _ := a.c.Poll(owner, map[string]any{"results_visibility": "always"})
	if !resultsAnswer(t, b.c, pollID, outsider, "live") { // B's view is warm
		t.Fatal("always: the outsider is refused on B")
	}
	watching := dial(t, b.wsURL(pollID, outsider), nil)

	a.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": map[string]any{"results_visibility": "owner_only"}}).
		Must(t, http.StatusOK)
	changed := time.Now()
	testenv.Eventually(t, time.Second, func() error {
		if resultsAnswer(t, b.c, pollID, outsider, "live") {
			return fmt.Errorf("B still shows the outsider the results %s after the change", time.Since(changed).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("the change reached B within %s", time.Since(changed).Round(time.Millisecond))
	refusal(t, b.wsURL(pollID, outsider), nil, http.StatusForbidden, "RESULTS_HIDDEN")
	if code := closeCode(t, watching, 5*time.Second); code != 4403 {
		t.Fatalf("the outsider's open socket: close code %d, want 4403", code)
	}
	if !resultsAnswer(t, b.c, pollID, owner, "live") {
		t.Fatal("the owner is refused on B")
	}
	dial(t, b.wsURL(pollID, owner), nil)
}
