//go:build integration

package vote_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestUnresolvedWriteThroughKeepsItsVoter (issue 19; found by `make chaos`,
// cassandra-pause row: one vote answered 202 and then refused): while
// Kafka is down a vote is written through, and its conditional insert
// reaches Cassandra but its outcome cannot be learned (the connection is
// cut after the insert, and every later statement on the poll is refused
// for a while), so it is answered 503. The ballot may be stored. The
// voter's flag used to be released with that 503, so once Kafka was back
// a second request of the voter was queued and answered 202, and then
// failed ALREADY_VOTED on the first ballot's row: a broken 202. The flag
// now stays pending: the second request waits or, once the flag is stale,
// writes through and gets the conditional write's answer (409); the first
// request's retry gets its ballot (200).
func TestUnresolvedWriteThroughKeepsItsVoter(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Queue.ProduceTimeout = 300 * time.Millisecond
	cfg.Queue.KafkaDownAfter = time.Second
	cfg.Queue.KafkaCooldown = 3 * time.Second
	proxy := testenv.BehindCQLProxy(t, &cfg.Cassandra)
	e := start(t, cfg, false)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	pid, _ := id.Parse(pollID)
	voters := tokens(t, e.c, 2)
	others := tokens(t, e.c, 40)
	other := func() string { o := others[0]; others = others[1:]; return o }
	vote := func(i int, key, opt string) testenv.Response {
		return e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voters[i], map[string]any{"option_id": opt}, "Idempotency-Key", key)
	}
	voteUntilQueued(t, e.c, pollID, opts[0], "warm-up vote", other)

	// Kafka hangs: votes are written through.
	resume := testenv.Pause(t, "kafka")
	testenv.Eventually(t, 30*time.Second, func() error {
		if r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", other(), map[string]any{"option_id": opts[0]}); r.Status != http.StatusOK {
			return fmt.Errorf("while Kafka hangs: %d %s", r.Status, r.Raw)
		}
		return nil
	})

	// The first request's insert reaches Cassandra; its outcome never
	// comes back.
	cut := proxy.CutThenBlock(testenv.Naming(pid[:], []byte("first-request")), testenv.Naming(pid[:]))
	first := vote(0, "first-request", opts[0])
	proxy.Heal()
	select {
	case <-cut:
	default:
		t.Fatalf("the proxy never cut the first request's insert (answer %d %s)", first.Status, first.Raw)
	}
	if first.Status != http.StatusServiceUnavailable {
		t.Fatalf("written through with its outcome unknown: %d %s, want 503", first.Status, first.Raw)
	}
	resume()

	// Kafka is back (after the cooldown the queue takes votes again).
	time.Sleep(cfg.Queue.KafkaCooldown + time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.app.RunWorker(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	second := vote(0, "second-request", opts[1])
	switch second.Status {
	case http.StatusConflict, http.StatusServiceUnavailable:
	case http.StatusAccepted:
		var st testenv.Response
		testenv.Eventually(t, 60*time.Second, func() error {
			st = e.c.Do("GET", "/v1/polls/"+pollID+"/votes/requests/"+second.Str("request_id"), voters[0], nil)
			if s := st.Str("state"); s == "completed" || s == "failed" {
				return nil
			}
			return fmt.Errorf("second request: %s", st.Raw)
		})
		if st.Str("state") == "failed" {
			t.Fatalf("the voter's second request was answered 202 and then %s: the first ballot's row was stored", st.Raw)
		}
	default:
		t.Fatalf("second request: %d %s", second.Status, second.Raw)
	}

	// The first request's retry finds its ballot.
	var retried testenv.Response
	testenv.Eventually(t, 30*time.Second, func() error {
		if retried = vote(0, "first-request", opts[0]); retried.Status != http.StatusOK && retried.Status != http.StatusAccepted {
			return fmt.Errorf("first request's retry: %d %s", retried.Status, retried.Raw)
		}
		return nil
	})
	if second.Status == http.StatusConflict || second.Status == http.StatusServiceUnavailable {
		t.Logf("second request answered %d %s; the first's retry %d", second.Status, second.Code(), retried.Status)
	}
}
