//go:build integration

package vote_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// pendingRows counts the poll's rows in pending_finals.
func pendingRows(t *testing.T, e *env, pollID string) int {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id FROM pending_finals`).Iter()
	n := 0
	var p id.ID
	for iter.Scan(&p) {
		if p == pid {
			n++
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// newShortPoll creates a poll that ends at end and returns its id and
// first option.
func newShortPoll(t *testing.T, e *env, owner string, end time.Time) (pollID, opt string) {
	t.Helper()
	created := e.c.Do("POST", "/v1/polls", owner, map[string]any{
		"title": "ends soon", "end_time": end.Format(time.RFC3339Nano),
		"options": []map[string]any{{"text": "yes", "display_order": 0}, {"text": "no", "display_order": 1}},
	}).Must(t, http.StatusCreated)
	return created.Str("poll_id"), created.Body["options"].([]any)[0].(map[string]any)["option_id"].(string)
}

// TestFreezeSurvivesAWorkerKill: a poll that ends by time (no owner close)
// gets its final tally frozen even when the worker that applied its votes
// is SIGKILLed before the end and another worker process takes over. The
// freeze used to live only in the dead worker's memory: the new worker
// never froze the poll.
func TestFreezeSurvivesAWorkerKill(t *testing.T) {
	cfg := asyncConfig(t)
	e := start(t, cfg, false) // the API, without a worker
	kill := startWorkerApart(t, cfg)

	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	end := time.Now().Add(15 * time.Second).UTC()
	pollID, opt := newShortPoll(t, e, owner, end)
	r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opt}).Must(t, http.StatusAccepted)
	got := settle(t, e, pollID, map[string]string{voter: r.Str("request_id")}, 20*time.Second)
	if s := got[voter].Str("state"); s != "completed" {
		t.Fatalf("vote: %s", got[voter].Raw)
	}
	kill()
	time.Sleep(time.Until(end.Add(time.Second)))

	startWorkerApart(t, cfg)
	if n := testenv.FrozenBallots(t, e.app, pollID, 60*time.Second); n != 1 {
		t.Fatalf("frozen tally: %d ballots, want 1", n)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := pendingRows(t, e, pollID); n != 0 {
			return fmt.Errorf("%d pending_finals rows left after the freeze", n)
		}
		return nil
	})
}

// TestSyncVotesGetAFinalTally: in sync mode no vote passes through the
// worker's drain, which was the only place a poll's end time was noted;
// a poll that ended by time then never had its final tally frozen.
func TestSyncVotesGetAFinalTally(t *testing.T) {
	cfg := testenv.Config(t) // sync mode
	e := start(t, cfg, true)

	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	end := time.Now().Add(4 * time.Second).UTC()
	pollID, opt := newShortPoll(t, e, owner, end)
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opt}).Must(t, http.StatusOK)
	time.Sleep(time.Until(end))
	if n := testenv.FrozenBallots(t, e.app, pollID, 60*time.Second); n != 1 {
		t.Fatalf("frozen tally: %d ballots, want 1", n)
	}
}
