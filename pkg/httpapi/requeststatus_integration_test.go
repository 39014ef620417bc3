//go:build integration

package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// A request id the server never issued is 404 even while Redis, which
// remembers accepted requests, cannot answer (it used to be "pending"), and
// a request on a poll that does not exist is POLL_NOT_FOUND.
func TestRequestStatusOfIdsNeverIssued(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.Redis.Addr = "127.0.0.1:1" }) // nothing listens
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, voterID := e.c.Account()
	rec := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "k1").
		Must(t, http.StatusOK)
	base := "/v1/polls/" + pollID + "/votes/requests/"

	if r := e.c.Do("GET", base+rec.Str("request_id"), voter, nil).Must(t, http.StatusOK); r.Str("state") != "completed" {
		t.Fatalf("issued id: %s", r.Raw)
	}
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	forged := map[string]string{
		"random":                id.New().String(),
		"derived from a key":    vote.NewRequestIDs(nil).New(pid, vid, "k2").String(),
		"issued to another key": vote.NewRequestIDs([]byte("not the server's secret, 32 bytes")).New(pid, vid, "k1").String(),
	}
	for name, rid := range forged {
		if r := e.c.Do("GET", base+rid, voter, nil); r.Status != http.StatusNotFound || r.Code() != "REQUEST_NOT_FOUND" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	missing := "/v1/polls/" + id.New().String() + "/votes/requests/" + rec.Str("request_id")
	if r := e.c.Do("GET", missing, voter, nil); r.Status != http.StatusNotFound || r.Code() != "POLL_NOT_FOUND" {
		t.Fatalf("missing poll: %d %s", r.Status, r.Raw)
	}
}
