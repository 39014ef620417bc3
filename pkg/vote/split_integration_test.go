//go:build integration

package vote_test

import (
	"bytes"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/testenv"
)

// startWorkerApart runs a real `tally worker` process beside the API
// (`tally serve --with-worker=false` is the in-process API of start), as
// the Kubernetes manifests deploy them: it shares the keyspace and topics
// with the API but none of its in-process state (the poll cache above
// all).
func startWorkerApart(t *testing.T, cfg config.Config) (kill func()) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), "worker")
	cmd.Env = testenv.Environ(cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tally worker: %v", err)
	}
	var once sync.Once
	wait := func() { once.Do(func() { _ = cmd.Wait() }) }
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		wait()
		if t.Failed() {
			t.Logf("tally worker output:\n%s", out.String())
		}
	})
	return func() {
		_ = cmd.Process.Kill()
		wait()
	}
}

// TestSplitWorkerCountsVotesInAnExtendedPoll runs API and worker apart. The
// worker drains a first vote, so it holds the poll; the owner then extends
// end_time, and a vote cast after the original end is answered 202. The
// worker must judge that vote by the poll the API judged it by (the
// extended one), not by its own older copy: both votes are recorded, the
// second request completes, and the frozen tally after the close is 2.
func TestSplitWorkerCountsVotesInAnExtendedPoll(t *testing.T) {
	cfg := asyncConfig(t)
	e := start(t, cfg, false) // the API, without a worker
	startWorkerApart(t, cfg)

	owner, _ := e.c.Account()
	first, _ := e.c.Account()
	late, _ := e.c.Account()
	// Long enough for the worker process to join its group and drain the
	// first vote before the poll ends.
	end := time.Now().Add(12 * time.Second).UTC()
	created := e.c.Do("POST", "/v1/polls", owner, map[string]any{
		"title": "extended", "end_time": end.Format(time.RFC3339Nano),
		"options": []map[string]any{{"text": "yes", "display_order": 0}, {"text": "no", "display_order": 1}},
	}).Must(t, http.StatusCreated)
	pollID := created.Str("poll_id")
	opt := created.Body["options"].([]any)[0].(map[string]any)["option_id"].(string)
	path := "/v1/polls/" + pollID + "/votes"

	// The first vote is drained: the worker has read the poll.
	r1 := e.c.Do("POST", path, first, map[string]any{"option_id": opt}).Must(t, http.StatusAccepted)
	got := settle(t, e, pollID, map[string]string{first: r1.Str("request_id")}, 20*time.Second)
	if s := got[first].Str("state"); s != "completed" {
		t.Fatalf("first vote: %s", got[first].Raw)
	}

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{
		"end_time": end.Add(time.Hour).Format(time.RFC3339Nano)}).Must(t, http.StatusOK)
	time.Sleep(time.Until(end.Add(500 * time.Millisecond)))

	// After the original end, inside the extension.
	r2 := e.c.Do("POST", path, late, map[string]any{"option_id": opt}).Must(t, http.StatusAccepted)
	got = settle(t, e, pollID, map[string]string{late: r2.Str("request_id")}, 20*time.Second)
	if s := got[late].Str("state"); s != "completed" {
		t.Errorf("vote in the extension: request %s, want completed", got[late].Raw)
	}
	if n := len(rows(t, e.app, pollID)); n != 2 {
		t.Errorf("votes rows: %d, want 2", n)
	}
	if total, _ := e.c.Results(owner, pollID, "final"); total != 2 {
		t.Errorf("final tally: %d, want 2", total)
	}
	if t.Failed() {
		t.FailNow()
	}

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if ballots := testenv.FrozenBallots(t, e.app, pollID, 60*time.Second); ballots != 2 {
		t.Fatalf("frozen tally: %d ballots, want 2", ballots)
	}
}
