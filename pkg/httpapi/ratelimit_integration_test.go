//go:build integration

package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/tally-vote/tally/pkg/testenv"
)

func TestRateLimits(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.RateLimit.PollCreatePerHour = 2
	cfg.RateLimit.VotesPerMinutePerIP = 3
	cfg.RateLimit.DisablePerIP = false
	cfg.RateLimit.AuthPerMinutePerIP = 0 // accounts below are made through the API from one IP
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)

	owner, _ := c.Account()
	body := map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}
	c.Do("POST", "/v1/polls", owner, body).Must(t, http.StatusCreated)
	c.Do("POST", "/v1/polls", owner, body).Must(t, http.StatusCreated)
	r := c.Do("POST", "/v1/polls", owner, body)
	if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
		t.Fatalf("third poll in the hour: %d %s", r.Status, r.Raw)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 3601 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another account still may create: the limit is per account.
	other, _ := c.Account()
	pollID, opts := c.Poll(other, nil)

	// Votes per IP: the fourth voter from this address in the minute is refused.
	for i := range 4 {
		voter, _ := c.Account()
		r := c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]})
		want := http.StatusOK
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if r.Status != want {
			t.Fatalf("vote %d: %d %s", i, r.Status, r.Raw)
		}
	}
}
