//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestOneVoterStormGetsOneAcceptance is SPEC invariant 1 under a storm: one
// voter sends 50 votes at once, each with its own Idempotency-Key, to the
// async path with the worker running. Exactly one request may be answered
// 202 (a 202 is a promise to record), the rest 409 ALREADY_VOTED or 503
// with Retry-After while the first is undecided; exactly one row is stored
// and every 202 completes. Before the admission refused to accept a second
// request over another's pending flag, most of the storm got 202 and then
// read "failed ALREADY_VOTED".
func TestOneVoterStormGetsOneAcceptance(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)

	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil, "a", "b", "c")
	voter, _ := e.c.Account()

	const n = 50
	answers := make([]testenv.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter,
				map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", fmt.Sprintf("storm-%d", i))
		}()
	}
	close(start)
	wg.Wait()

	var accepted []string
	counts := map[int]int{}
	for _, r := range answers {
		counts[r.Status]++
		switch {
		case r.Status == http.StatusAccepted || r.Status == http.StatusOK:
			accepted = append(accepted, r.Str("request_id"))
		case r.Status == http.StatusConflict && r.Code() == "ALREADY_VOTED":
		case r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "":
		default:
			t.Errorf("answer %d %s", r.Status, r.Raw)
		}
	}
	t.Logf("storm of %d: %v", n, counts)
	if len(accepted) != 1 {
		t.Fatalf("%d requests answered 2xx, want exactly 1 (answers %v)", len(accepted), counts)
	}
	base := "/v1/polls/" + pollID + "/votes/requests/"
	testenv.Eventually(t, 20*time.Second, func() error {
		if st := e.c.Do("GET", base+accepted[0], voter, nil).Must(t, http.StatusOK).Str("state"); st != "completed" {
			return fmt.Errorf("the accepted request is %s", st)
		}
		return nil
	})
	if rows := e.voteRows(t, pollID); len(rows) != 1 {
		t.Fatalf("%d rows stored, want 1", len(rows))
	}
}
