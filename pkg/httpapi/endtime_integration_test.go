//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestEndTimeInThePastIsRefused: an owner's PATCH that moves end_time to
// now or before is refused with 400 VALIDATION_FAILED naming end_time, and
// the poll is left as it was — still active, its end_time unchanged, no
// close. Moving the end into the past would refuse the 202s still queued
// while those already applied stay counted, and no close event would fire;
// ending a poll now is the close ({"status":"closed"}), which this test
// then uses. On the async stack: a vote queued before the refused PATCH,
// and one cast after it, are both recorded, and the frozen tally is 2.
func TestEndTimeInThePastIsRefused(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)

	owner, _ := e.c.Account()
	first, _ := e.c.Account()
	second, _ := e.c.Account()
	// Started two hours ago, so every end_time below is after start_time.
	created := e.c.Do("POST", "/v1/polls", owner, map[string]any{
		"title": "ends later", "start_time": time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano),
		"options": []map[string]any{{"text": "yes", "display_order": 0}, {"text": "no", "display_order": 1}},
	}).Must(t, http.StatusCreated)
	pollID := created.Str("poll_id")
	var opts []string
	for _, o := range created.Body["options"].([]any) {
		opts = append(opts, o.(map[string]any)["option_id"].(string))
	}
	path := "/v1/polls/" + pollID
	before := e.c.Do("GET", path, "", nil).Must(t, http.StatusOK)

	r1 := e.c.Do("POST", path+"/votes", first, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)

	for _, tc := range []struct {
		name string
		end  time.Time
	}{
		{"an hour ago", time.Now().Add(-time.Hour)},
		{"a second ago", time.Now().Add(-time.Second)},
		{"now, to the ms", time.Now()},
	} {
		name := tc.name
		r := e.c.Do("PATCH", path, owner, map[string]any{"end_time": tc.end.UTC().Format(time.RFC3339Nano)})
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Errorf("end_time %s: %d %s, want 400 VALIDATION_FAILED", name, r.Status, r.Raw)
			continue
		}
		if f, _ := r.Body["error"].(map[string]any)["field"].(string); f != "end_time" {
			t.Errorf("end_time %s: the refusal names %q, want end_time: %s", name, f, r.Raw)
		}
	}
	after := e.c.Do("GET", path, "", nil).Must(t, http.StatusOK)
	if after.Str("status") != "active" || after.Str("end_time") != before.Str("end_time") || after.Str("closed_at") != "" {
		t.Errorf("the poll changed: before %s, after %s", before.Raw, after.Raw)
	}
	if t.Failed() {
		t.FailNow()
	}

	r2 := e.c.Do("POST", path+"/votes", second, map[string]any{"option_id": opts[1]}).Must(t, http.StatusAccepted)
	for tok, rid := range map[string]string{first: r1.Str("request_id"), second: r2.Str("request_id")} {
		testenv.Eventually(t, 20*time.Second, func() error {
			r := e.c.Do("GET", path+"/votes/requests/"+rid, tok, nil).Must(t, http.StatusOK)
			switch r.Str("state") {
			case "pending":
				return fmt.Errorf("request %s pending", rid)
			case "completed":
				return nil
			}
			t.Fatalf("request %s: %s", rid, r.Raw)
			return nil
		})
	}
	if n := len(e.voteRows(t, pollID)); n != 2 {
		t.Fatalf("votes rows: %d, want 2", n)
	}

	// Ending the poll now is the close: closed_at set, the tally frozen.
	closed := e.c.Do("PATCH", path, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if closed.Str("status") != "closed" || closed.Str("closed_at") == "" {
		t.Fatalf("close: %s", closed.Raw)
	}
	if ballots := testenv.FrozenBallots(t, e.app, pollID, 60*time.Second); ballots != 2 {
		t.Fatalf("frozen tally: %d ballots, want 2", ballots)
	}
}
