//go:build integration

package vote_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

type env struct {
	app *app.App
	c   *testenv.Client
	cfg config.Config
}

func asyncConfig(t *testing.T) config.Config {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	return cfg
}

func start(t *testing.T, cfg config.Config, withWorker bool) *env {
	t.Helper()
	a, srv := testenv.Server(t, cfg)
	if withWorker {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = a.RunWorker(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return &env{app: a, c: testenv.NewClient(t, srv.URL), cfg: cfg}
}

// rows returns each voter's stored options for a poll, read straight from
// the votes table of the test keyspace.
func rows(t *testing.T, a *app.App, pollID string) map[id.ID][]id.ID {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := a.CQL.Session.Query(`SELECT poll_id, voter_id, option_ids FROM votes`).Iter()
	out := map[id.ID][]id.ID{}
	var (
		p, v id.ID
		opts []id.ID
	)
	for iter.Scan(&p, &v, &opts) {
		if p == pid {
			out[v] = opts
		}
		opts = nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan votes: %v", err)
	}
	return out
}

// tokens mints n anonymous voters (the poll must allow anonymous votes).
func tokens(t *testing.T, c *testenv.Client, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	}
	return out
}

// freshVoter mints one anonymous voter per call (see tokens).
func freshVoter(t *testing.T, c *testenv.Client) func() string {
	return func() string { return tokens(t, c, 1)[0] }
}

// voteUntilQueued votes for optionID, each try as the voter next returns,
// until a vote is queued (202) within 30 s: the queue has then seen Kafka
// acknowledge. what names the vote in the error of a try that was not.
func voteUntilQueued(t *testing.T, c *testenv.Client, pollID, optionID, what string, next func() string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		r := c.Do("POST", "/v1/polls/"+pollID+"/votes", next(), map[string]any{"option_id": optionID})
		if r.Status != http.StatusAccepted {
			return fmt.Errorf("%s: %d %s", what, r.Status, r.Raw)
		}
		return nil
	})
}

// expectConverged checks final == rows and that live reaches it within 5 s.
func expectConverged(t *testing.T, e *env, owner, pollID string, opts []string) {
	t.Helper()
	stored := rows(t, e.app, pollID)
	want := map[string]int64{}
	for _, o := range stored {
		for _, id := range o {
			want[id.String()]++
		}
	}
	total, votes := e.c.Results(owner, pollID, "final")
	if total != int64(len(stored)) {
		t.Fatalf("final total %d, rows %d", total, len(stored))
	}
	for _, o := range opts {
		if votes[o] != want[o] {
			diffIndex(t, e, pollID, stored)
			t.Fatalf("final option %s: %d, rows %d", o, votes[o], want[o])
		}
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		total, votes := e.c.Results(owner, pollID, "live")
		if total != int64(len(stored)) {
			return fmt.Errorf("live total %d, rows %d", total, len(stored))
		}
		for _, o := range opts {
			if votes[o] != want[o] {
				return fmt.Errorf("live option %s: %d, rows %d", o, votes[o], want[o])
			}
		}
		return nil
	})
}

func TestAsyncThousandVotesFiveHundredVoters(t *testing.T) {
	e := start(t, asyncConfig(t), true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 500)

	type accepted struct{ voter, request string }
	var (
		mu       sync.Mutex
		accepts  []accepted
		dupes    atomic.Int64
		sem      = make(chan struct{}, 32)
		wg       sync.WaitGroup
		path     = "/v1/polls/" + pollID + "/votes"
		failures atomic.Int64
	)
	send := func(voter int, key string) {
		defer func() { <-sem; wg.Done() }()
		headers := []string{}
		if key != "" {
			headers = []string{"Idempotency-Key", key}
		}
		// As a client does: a 503 with Retry-After (the voter's other
		// request is still undecided, or the process sheds) is retried
		// after the wait it names, with the same key.
		r := e.c.Do("POST", path, voters[voter], map[string]any{"option_id": opts[voter%3]}, headers...)
		for retries := 0; r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "" && retries < 10; retries++ {
			wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
			r = e.c.Do("POST", path, voters[voter], map[string]any{"option_id": opts[voter%3]}, headers...)
		}
		switch {
		case r.Status == http.StatusAccepted && r.Str("request_id") != "":
			mu.Lock()
			accepts = append(accepts, accepted{voters[voter], r.Str("request_id")})
			mu.Unlock()
		case r.Status == http.StatusConflict && r.Code() == "ALREADY_VOTED":
			dupes.Add(1)
		default:
			failures.Add(1)
			t.Errorf("voter %d: %d %s", voter, r.Status, r.Raw)
		}
	}
	// 1,000 submissions: every voter votes; the second half votes twice,
	// concurrently, half of them retrying with the same key and half with a
	// different one.
	for i := range 500 {
		n := 1
		if i >= 250 {
			n = 2
		}
		for j := range n {
			key := fmt.Sprintf("k-%d-%d", i, j)
			if i >= 375 {
				key = fmt.Sprintf("k-%d", i) // same key twice: a retry
			}
			sem <- struct{}{}
			wg.Add(1)
			go send(i, key)
		}
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	t.Logf("%d accepted (202), %d refused at once as duplicates", len(accepts), dupes.Load())

	// Every 202 ends completed or failed ALREADY_VOTED.
	completed := map[string]string{} // voter token -> vote_id
	for _, a := range accepts {
		var last testenv.Response
		testenv.Eventually(t, 20*time.Second, func() error {
			last = e.c.Do("GET", path+"/requests/"+a.request, a.voter, nil).Must(t, http.StatusOK)
			if last.Str("state") == "pending" {
				return fmt.Errorf("request %s still pending", a.request)
			}
			return nil
		})
		switch last.Str("state") {
		case "completed":
			if prev, ok := completed[a.voter]; ok && prev != last.Str("vote_id") {
				t.Fatalf("voter has two completed votes %s and %s", prev, last.Str("vote_id"))
			}
			completed[a.voter] = last.Str("vote_id")
		case "failed":
			if code := last.Body["error"].(map[string]any)["code"]; code != "ALREADY_VOTED" {
				t.Fatalf("request failed with %v", code)
			}
		default:
			t.Fatalf("state %q", last.Str("state"))
		}
	}
	stored := rows(t, e.app, pollID)
	if len(stored) != 500 || len(completed) != 500 {
		t.Fatalf("%d rows and %d completed voters, want 500 each", len(stored), len(completed))
	}
	expectConverged(t, e, owner, pollID, opts)

	// Status is private: another voter cannot read this request.
	for _, a := range accepts {
		if a.voter == voters[0] {
			continue
		}
		if r := e.c.Do("GET", path+"/requests/"+a.request, voters[0], nil); r.Status != http.StatusNotFound {
			t.Fatalf("foreign request: %d %s", r.Status, r.Raw)
		}
		break
	}
}

// diffIndex logs voters whose index row disagrees with their ballot row.
func diffIndex(t *testing.T, e *env, pollID string, stored map[id.ID][]id.ID) {
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT voter_id, options, vote_id FROM votes_by_poll WHERE poll_id = ? ALLOW FILTERING`, pid).Iter()
	var (
		v, vid id.ID
		opts   []id.ID
		n      int
	)
	for iter.Scan(&v, &opts, &vid) {
		if fmt.Sprint(stored[v]) != fmt.Sprint(opts) && n < 5 {
			n++
			t.Logf("voter %s: row %v, index %v", v, stored[v], opts)
		}
		opts = nil
	}
	t.Logf("index scan: %v", iter.Close())
}
