//go:build integration

package vote_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestFrozenTallyCountsAGivenUpFollowUp (issue 19 hole 5): a sync vote's
// conditional insert applies, and then Cassandra refuses every statement
// naming the poll for longer than the vote's follow-up budget, so the
// ballot is stored and answered 200 without its counter or index row. The
// final tally counts the index: before the fix it froze without that
// ballot for good (1 of 2 rows). Now the voter's unfinished entry, written
// before the insert, makes the freeze index the ballot first.
func TestFrozenTallyCountsAGivenUpFollowUp(t *testing.T) {
	cfg := testenv.Config(t) // sync mode
	cfg.Vote.FollowUpBudget = 2 * time.Second
	proxy := testenv.BehindCQLProxy(t, &cfg.Cassandra)
	e := start(t, cfg, true) // the API with its scheduler: it freezes the poll
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	pid, _ := id.Parse(pollID)
	voters := tokens(t, e.c, 2)

	// Warm up: the poll's options are frozen and the statements prepared.
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voters[0], map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)

	// The vote's insert is answered; from then on nothing naming the poll
	// reaches Cassandra until the vote has been answered.
	on := proxy.BlockAfterReply(func(body []byte) bool { return bytes.Contains(body, []byte("[applied]")) },
		testenv.Naming(pid[:]))
	start := time.Now()
	resp := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voters[1], map[string]any{"option_id": opts[1]})
	took := time.Since(start)
	proxy.Heal()
	select {
	case <-on:
	default:
		t.Fatalf("the block never turned on: no conditional insert was answered (vote: %d %s)", resp.Status, resp.Raw)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("vote whose follow-ups were refused: %d %s, want 200 (the ballot is recorded)", resp.Status, resp.Raw)
	}
	if n := metric(t, e, "tally_vote_followup_errors_total"); n == 0 {
		t.Fatalf("no follow-up write failed in %s: the block missed them", took)
	}
	if stored := rows(t, e.app, pollID); len(stored) != 2 {
		t.Fatalf("%d vote rows, want 2", len(stored))
	}

	testenv.Eventually(t, 30*time.Second, func() error {
		r := e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"})
		if r.Status != http.StatusOK {
			return fmt.Errorf("close: %d %s", r.Status, r.Raw)
		}
		return nil
	})
	if n := testenv.FrozenBallots(t, e.app, pollID, 90*time.Second); n != 2 {
		t.Fatalf("frozen tally: %d ballots for 2 vote rows (the given-up ballot is not in it)", n)
	}
	var left int
	if err := e.app.CQL.Session.Query(`SELECT COUNT(*) FROM unfinished_ballots WHERE poll_id = ? AND bucket IN ?`, pid, seq(64)).
		Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d unfinished entries left after the freeze", left)
	}
	if n := metric(t, e, "tally_vote_unfinished_total"); n == 0 {
		t.Fatalf("tally_vote_unfinished_total is 0: the given-up ballot was not counted as left")
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
