//go:build integration

package httpapi_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// TestCountingMethodSettings: settings.method and min_votes_per_user on
// create, read, ballots and patch, against the real servers; the ranked
// ballot's order is read back from the votes row itself.
func TestCountingMethodSettings(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	voter, voterID := e.c.Account()
	settingsOf := func(r map[string]any) map[string]any { return r["settings"].(map[string]any) }

	ranked, opts := e.c.Poll(owner, map[string]any{"method": "ranked", "min_votes_per_user": 2})
	s := settingsOf(e.c.Do("GET", "/v1/polls/"+ranked, owner, nil).Must(t, http.StatusOK).Body)
	if s["method"] != "ranked" || s["allow_multiple_options"] != true || s["min_votes_per_user"] != float64(2) {
		t.Fatalf("ranked settings: %v", s)
	}
	// Too short a ranking, then an option twice: 400 naming option_ids.
	for _, ids := range [][]string{{opts[2]}, {opts[2], opts[0], opts[2]}} {
		r := e.c.Do("POST", "/v1/polls/"+ranked+"/votes", voter, map[string]any{"option_ids": ids})
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Fatalf("ballot %v: %d %s", ids, r.Status, r.Raw)
		}
	}
	e.c.Do("POST", "/v1/polls/"+ranked+"/votes", voter, map[string]any{"option_ids": []string{opts[2], opts[0]}}).Must(t, http.StatusOK)
	rows := e.voteRows(t, ranked)
	if got := rows[voterID]; len(got) != 2 || got[0].String() != opts[2] || got[1].String() != opts[0] {
		t.Fatalf("the row does not keep the preference order: %v", got)
	}
	// The method is frozen with the options once a vote exists, also
	// through the boolean; other settings still change.
	for _, patch := range []map[string]any{{"method": "schulze"}, {"method": "approval", "allow_multiple_options": true}} {
		if r := e.c.Do("PATCH", "/v1/polls/"+ranked, owner, map[string]any{"settings": patch}); r.Status != http.StatusConflict || r.Code() != "OPTIONS_FROZEN" {
			t.Fatalf("patch %v after a vote: %d %s", patch, r.Status, r.Raw)
		}
	}
	if r := e.c.Do("PATCH", "/v1/polls/"+ranked, owner, map[string]any{"settings": map[string]any{"allow_multiple_options": false}}); r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("ranked without multiple options: %d %s", r.Status, r.Raw)
	}
	e.c.Do("PATCH", "/v1/polls/"+ranked, owner, map[string]any{"settings": map[string]any{"min_votes_per_user": 3, "method": "ranked"}}).Must(t, http.StatusOK)

	// A client that knows only the boolean gets approval, as before.
	legacy, _ := e.c.Poll(owner, map[string]any{"allow_multiple_options": true, "max_votes_per_user": 2})
	if s := settingsOf(e.c.Do("GET", "/v1/polls/"+legacy, "", nil).Body); s["method"] != "approval" || s["min_votes_per_user"] != float64(1) {
		t.Fatalf("legacy settings: %v", s)
	}

	// Bad settings on create, each naming its field.
	for _, tc := range []struct {
		settings map[string]any
		field    string
	}{
		{map[string]any{"method": "borda"}, "settings.method"},
		{map[string]any{"method": "plurality", "allow_multiple_options": true}, "settings.allow_multiple_options"},
		{map[string]any{"method": "approval", "min_votes_per_user": 3, "max_votes_per_user": 2}, "settings.min_votes_per_user"},
		{map[string]any{"min_votes_per_user": 0, "method": "approval"}, "settings.min_votes_per_user"},
		{map[string]any{"min_votes_per_user": 2}, "settings.min_votes_per_user"},
	} {
		r := e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": "bad", "options": []map[string]any{{"text": "a"}, {"text": "b"}, {"text": "c"}}, "settings": tc.settings})
		field, _ := r.Body["error"].(map[string]any)["field"].(string)
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || (field != "" && field != tc.field) {
			t.Fatalf("create %v: %d %s, want 400 on %s", tc.settings, r.Status, r.Raw, tc.field)
		}
	}

	// Before any vote the method may change: a draft becomes Schulze.
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": "draft", "start_time": start,
		"options": []map[string]any{{"text": "a"}, {"text": "b"}}}).Must(t, http.StatusCreated)
	r = e.c.Do("PATCH", "/v1/polls/"+r.Str("poll_id"), owner, map[string]any{"settings": map[string]any{"method": "schulze"}}).Must(t, http.StatusOK)
	if s := settingsOf(r.Body); !reflect.DeepEqual([]any{s["method"], s["allow_multiple_options"]}, []any{"schulze", true}) {
		t.Fatalf("draft patched: %v", s)
	}
}
