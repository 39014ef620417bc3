//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPollLifecycle(t *testing.T) {
	e := newEnv(t)
	owner, ownerID := e.c.Account()
	other, _ := e.c.Account()
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := e.c.Do("POST", "/v1/polls", owner, map[string]any{
		"title": "Later", "description": "d", "start_time": start,
		"options": []map[string]any{{"text": "b", "display_order": 1}, {"text": "a", "display_order": 0}},
	}).Must(t, http.StatusCreated)
	pollID := r.Str("poll_id")
	if r.Str("status") != "draft" || r.Str("creator_id") != ownerID || !strings.HasSuffix(r.Str("manage_url"), pollID) {
		t.Fatalf("created: %s", r.Raw)
	}
	opts := r.Body["options"].([]any)
	if opts[0].(map[string]any)["text"] != "a" {
		t.Fatalf("options not in display order: %s", r.Raw)
	}
	end := r.Body["end_time"].(string)
	if got, _ := time.Parse(time.RFC3339, end); got.Sub(time.Now().Add(time.Hour)) < 7*24*time.Hour-time.Minute {
		t.Fatalf("end_time %s, want start + 7 days", end)
	}
	optA := opts[0].(map[string]any)["option_id"].(string)
	// Anyone with the link can read a draft; nobody can vote on it yet.
	e.c.Do("GET", "/v1/polls/"+pollID, "", nil).Must(t, http.StatusOK)
	if r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", other, map[string]any{"option_id": optA}); r.Code() != "POLL_NOT_ACTIVE" {
		t.Fatalf("vote on draft: %d %s", r.Status, r.Raw)
	}
	// Owner-only PATCH.
	if r := e.c.Do("PATCH", "/v1/polls/"+pollID, other, map[string]any{"title": "mine now"}); r.Status != 403 || r.Code() != "NOT_POLL_OWNER" {
		t.Fatalf("non-owner patch: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"title": ""}); r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("empty title patch: %s", r.Raw)
	}
	// Options can change while no vote exists.
	r = e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{
		"title": "Renamed", "options": []map[string]any{{"text": "x"}, {"text": "y"}, {"text": "z"}},
		"settings": map[string]any{"allow_anonymous": true},
	}).Must(t, http.StatusOK)
	if r.Str("title") != "Renamed" || len(r.Body["options"].([]any)) != 3 || !r.Body["settings"].(map[string]any)["allow_anonymous"].(bool) {
		t.Fatalf("patched: %s", r.Raw)
	}
	if !r.Body["settings"].(map[string]any)["show_results_during_voting"].(bool) {
		t.Fatalf("a settings patch reset unrelated settings: %s", r.Raw)
	}

	// An active poll: vote, then options are frozen.
	active, aopts := e.c.Poll(owner, nil)
	e.c.Do("POST", "/v1/polls/"+active+"/votes", other, map[string]any{"option_id": aopts[0]}).Must(t, http.StatusOK)
	if r := e.c.Do("PATCH", "/v1/polls/"+active, owner, map[string]any{"options": []map[string]any{{"text": "p"}, {"text": "q"}}}); r.Code() != "OPTIONS_FROZEN" {
		t.Fatalf("options after a vote: %d %s", r.Status, r.Raw)
	}
	// Close now: status closed, votes refused, results final.
	r = e.c.Do("PATCH", "/v1/polls/"+active, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if r.Str("status") != "closed" {
		t.Fatalf("closed: %s", r.Raw)
	}
	late, _ := e.c.Account()
	if r := e.c.Do("POST", "/v1/polls/"+active+"/votes", late, map[string]any{"option_id": aopts[1]}); r.Status != 409 || r.Code() != "POLL_NOT_ACTIVE" {
		t.Fatalf("vote after close: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("PATCH", "/v1/polls/"+active, owner, map[string]any{"status": "open"}); r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("reopen: %s", r.Raw)
	}
	total, votes := e.c.Results("", active, "final")
	if total != 1 || votes[aopts[0]] != 1 {
		t.Fatalf("final after close: %d %v", total, votes)
	}
}

func TestCreatePollIdempotencyAndListing(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	body := map[string]any{"title": "Same", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = e.c.Do("POST", "/v1/polls", owner, body, "Idempotency-Key", "create-1").Must(t, http.StatusCreated).Str("poll_id")
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("same key made different polls: %v", ids)
		}
	}
	changed := map[string]any{"title": "Different", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}
	if r := e.c.Do("POST", "/v1/polls", owner, changed, "Idempotency-Key", "create-1"); r.Status != 409 || r.Code() != "IDEMPOTENCY_CONFLICT" {
		t.Fatalf("key reused with another body: %d %s", r.Status, r.Raw)
	}
	for i := range 4 {
		e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": fmt.Sprint("p", i),
			"options": []map[string]any{{"text": "a"}, {"text": "b"}}}).Must(t, http.StatusCreated)
		time.Sleep(5 * time.Millisecond)
	}
	seen := map[string]bool{}
	var titles []string
	cursor, issued := "", ""
	for page := 0; page < 10; page++ {
		r := e.c.Do("GET", "/v1/polls?limit=2&cursor="+cursor, owner, nil).Must(t, http.StatusOK)
		for _, p := range r.Body["polls"].([]any) {
			m := p.(map[string]any)
			if seen[m["poll_id"].(string)] {
				t.Fatalf("poll listed twice")
			}
			seen[m["poll_id"].(string)] = true
			titles = append(titles, m["title"].(string))
		}
		if cursor = r.Str("next_cursor"); cursor == "" {
			break
		}
		issued = cursor
	}
	if got := strings.Join(titles, ","); got != "p3,p2,p1,p0,Same" {
		t.Fatalf("listing %q, want newest first p3,p2,p1,p0,Same", got)
	}
	other, _ := e.c.Account()
	if r := e.c.Do("GET", "/v1/polls", other, nil).Must(t, http.StatusOK); len(r.Body["polls"].([]any)) != 0 {
		t.Fatalf("another account sees polls: %s", r.Raw)
	}
	// Cursors the API never issued, or issued to someone else, are 400
	// (they once reached Cassandra as a protocol error: 503).
	for _, bad := range []string{"__main__", "AAAA", issued + "x", "a.b"} {
		if r := e.c.Do("GET", "/v1/polls?cursor="+bad, owner, nil); r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Fatalf("cursor %q: %d %s", bad, r.Status, r.Raw)
		}
	}
	if r := e.c.Do("GET", "/v1/polls?cursor="+issued, other, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("another account's cursor: %d %s", r.Status, r.Raw)
	}
}

func TestResultsVisibilityAndPrivacy(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"show_results_during_voting": false})
	voter, _ := e.c.Account()
	outsider, _ := e.c.Account()
	results := "/v1/polls/" + pollID + "/results"

	e.c.Do("GET", results, owner, nil).Must(t, http.StatusOK)
	for name, tok := range map[string]string{"outsider": outsider, "no token": "", "voter before voting": voter} {
		if r := e.c.Do("GET", results, tok, nil); r.Status != 403 || r.Code() != "RESULTS_HIDDEN" {
			t.Fatalf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[2]}).Must(t, http.StatusOK)
	e.c.Do("GET", results, voter, nil).Must(t, http.StatusOK)

	// votes/me shows the caller's own vote and nothing else.
	mine := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/me", voter, nil).Must(t, http.StatusOK)
	if mine.Body["has_voted"] != true || mine.Str("option_id") != opts[2] {
		t.Fatalf("voter's own vote: %s", mine.Raw)
	}
	theirs := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/me", outsider, nil).Must(t, http.StatusOK)
	if theirs.Body["has_voted"] != false || strings.Contains(string(theirs.Raw), opts[2]) {
		t.Fatalf("outsider sees: %s", theirs.Raw)
	}
	// The owner sees counts, never who voted for what.
	ownerView := e.c.Do("GET", results, owner, nil).Must(t, http.StatusOK)
	for _, leak := range []string{"voter", "user_id", "ip"} {
		if strings.Contains(string(ownerView.Raw), `"`+leak) {
			t.Fatalf("results leak %q: %s", leak, ownerView.Raw)
		}
	}
	// After close, everyone sees results.
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	e.c.Do("GET", results, outsider, nil).Must(t, http.StatusOK)
}

func TestMultiOptionAndAnonymousVoting(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_multiple_options": true, "max_votes_per_user": 2,
		"allow_anonymous": true}, "a", "b", "c", "d")
	votes := "/v1/polls/" + pollID + "/votes"
	anon := func() string {
		return e.c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	}
	a1, a2, a3 := anon(), anon(), anon()
	if r := e.c.Do("POST", votes, a1, map[string]any{"option_ids": opts[:3]}); r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("over the max: %s", r.Raw)
	}
	if r := e.c.Do("POST", votes, a1, map[string]any{"option_ids": []string{opts[0], opts[0]}}); r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("duplicate in set: %s", r.Raw)
	}
	e.c.Do("POST", votes, a1, map[string]any{"option_ids": opts[:2]}).Must(t, http.StatusOK)
	e.c.Do("POST", votes, a2, map[string]any{"option_ids": opts[1:3]}).Must(t, http.StatusOK)
	e.c.Do("POST", votes, a3, map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	if r := e.c.Do("POST", votes, a1, map[string]any{"option_id": opts[3]}); r.Code() != "ALREADY_VOTED" {
		t.Fatalf("anonymous voter voting twice: %s", r.Raw)
	}
	// Anonymous tokens cannot create polls or read /users/me.
	if r := e.c.Do("POST", "/v1/polls", a1, map[string]any{"title": "x", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}); r.Status != 403 {
		t.Fatalf("anonymous create: %d", r.Status)
	}
	r := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil).Must(t, http.StatusOK)
	if r.Body["total_votes"].(float64) != 3 {
		t.Fatalf("ballots: %s", r.Raw)
	}
	for _, o := range r.Body["options"].([]any) {
		m := o.(map[string]any)
		want := map[string]float64{opts[0]: 1, opts[1]: 3, opts[2]: 1, opts[3]: 0}[m["option_id"].(string)]
		if m["votes"].(float64) != want {
			t.Fatalf("option %v votes %v want %v", m["label"], m["votes"], want)
		}
		if m["option_id"] == opts[1] && m["percentage"].(float64) != 100 {
			t.Fatalf("percentage is share of ballots: %v", m)
		}
	}
	// A poll without allow_anonymous refuses anonymous voters.
	closedToAnon, copts := e.c.Poll(owner, nil)
	if r := e.c.Do("POST", "/v1/polls/"+closedToAnon+"/votes", anon(), map[string]any{"option_id": copts[0]}); r.Status != 403 {
		t.Fatalf("anonymous on accounts-only poll: %d %s", r.Status, r.Raw)
	}
}
