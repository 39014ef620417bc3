//go:build integration

package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// mustInvalid checks a refusal of field: 400 VALIDATION_FAILED naming it.
func mustInvalid(t *testing.T, what string, r testenv.Response, field string) {
	t.Helper()
	e, _ := r.Body["error"].(map[string]any)
	if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || e["field"] != field {
		t.Fatalf("%s: %d %s, want 400 VALIDATION_FAILED naming %s", what, r.Status, r.Raw, field)
	}
}

// Issue 19, hole 12: header values that are not valid UTF-8 never reach a
// text column (Cassandra refuses them, which used to answer 503). An
// Idempotency-Key that is not UTF-8 is 400 with nothing written, its
// 255 limit counts characters as the OpenAPI document says, and the user
// agent kept with a ballot is cut at a character boundary and made valid.
func TestHeadersThatAreNotUTF8(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	poll := map[string]any{"title": "utf-8", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}

	r := e.c.Do("POST", "/v1/polls", owner, poll, "Idempotency-Key", "\xc3")
	mustInvalid(t, "create with a lone 0xC3 key", r, "Idempotency-Key")
	list := e.c.Do("GET", "/v1/polls", owner, nil).Must(t, http.StatusOK)
	if polls, _ := list.Body["polls"].([]any); len(polls) != 0 {
		t.Fatalf("a refused create wrote a poll: %s", list.Raw)
	}

	// 255 characters of two bytes each is within the limit; 256 is not.
	e.c.Do("POST", "/v1/polls", owner, poll, "Idempotency-Key", strings.Repeat("é", 255)).Must(t, http.StatusCreated)
	r = e.c.Do("POST", "/v1/polls", owner, poll, "Idempotency-Key", strings.Repeat("é", 256))
	mustInvalid(t, "create with a 256-character key", r, "Idempotency-Key")

	pollID, opts := e.c.Poll(owner, nil)
	vote := map[string]any{"option_id": opts[0]}
	voter, voterID := e.c.Account()
	r = e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, vote, "Idempotency-Key", "k\xc3")
	mustInvalid(t, "vote with a key that is not UTF-8", r, "Idempotency-Key")
	if rows := e.voteRows(t, pollID); len(rows) != 0 {
		t.Fatalf("a refused vote wrote rows: %v", rows)
	}

	// A user agent cut at byte 512 in the middle of a character, and one
	// holding a byte that is not UTF-8: both votes are recorded, their
	// user agents stored as valid UTF-8 of at most 512 bytes.
	long := strings.Repeat("a", 511) + "é tail"
	for _, tc := range []struct {
		ua, want string
		voter    string
		voterID  string
	}{
		{ua: long, want: strings.Repeat("a", 511), voter: voter, voterID: voterID},
		{ua: "curl\xff/8.0", want: "curl\uFFFD/8.0"},
	} {
		if tc.voter == "" {
			tc.voter, tc.voterID = e.c.Account()
		}
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tc.voter, vote, "User-Agent", tc.ua).Must(t, http.StatusOK)
		pid, _ := id.Parse(pollID)
		vid, _ := id.Parse(tc.voterID)
		var ua string
		if err := e.app.CQL.Session.Query(`SELECT user_agent FROM votes WHERE poll_id = ? AND voter_id = ?`, pid, vid).
			Scan(&ua); err != nil {
			t.Fatalf("read vote row: %v", err)
		}
		if ua != tc.want || !utf8.ValidString(ua) || len(ua) > 512 {
			t.Fatalf("user agent %q stored as %q, want %q", tc.ua, ua, tc.want)
		}
	}
}
