//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

type env struct {
	app *app.App
	c   *testenv.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, srv := testenv.Server(t, testenv.Config(t))
	return &env{app: a, c: testenv.NewClient(t, srv.URL)}
}

// newWorkerEnv serves cfg with the vote worker running in the same
// process, stopped when the test ends.
func newWorkerEnv(t *testing.T, cfg config.Config) *env {
	t.Helper()
	a, srv := testenv.Server(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.RunWorker(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{app: a, c: testenv.NewClient(t, srv.URL)}
}

// voteRows counts the rows of the votes table for a poll by a full scan of
// the test's own keyspace: the truth, read without Tally's code.
func (e *env) voteRows(t *testing.T, pollID string) map[string][]id.ID {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id, voter_id, option_ids FROM votes`).Iter()
	rows := map[string][]id.ID{}
	var (
		p, v id.ID
		opts []id.ID
	)
	for iter.Scan(&p, &v, &opts) {
		if p == pid {
			rows[v.String()] = opts
		}
		opts = nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan votes: %v", err)
	}
	return rows
}

func TestOneVoterFiftyConcurrentSubmissions(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()

	statuses := make([]int, 50)
	codes := make([]string, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter,
				map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", fmt.Sprintf("key-%d", i))
			statuses[i], codes[i] = r.Status, r.Code()
		}()
	}
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		switch {
		case s == http.StatusOK:
			ok++
		case s == http.StatusConflict && codes[i] == "ALREADY_VOTED":
		default:
			t.Errorf("submission %d: status %d code %q", i, s, codes[i])
		}
	}
	if ok != 1 {
		t.Fatalf("%d submissions succeeded, want exactly 1", ok)
	}
	if rows := e.voteRows(t, pollID); len(rows) != 1 {
		t.Fatalf("%d vote rows, want 1", len(rows))
	}
	total, _ := e.c.Results(owner, pollID, "final")
	live, _ := e.c.Results(owner, pollID, "live")
	if total != 1 || live != 1 {
		t.Fatalf("final total %d, live total %d, want 1 and 1", total, live)
	}
}

func TestSameKeyRetriesReturnOriginalVote(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()
	const key = "retry-me"

	voteIDs := make([]string, 6)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]},
				"Idempotency-Key", key)
			if r.Status != http.StatusOK {
				t.Errorf("concurrent retry %d: %d %s", i, r.Status, r.Raw)
			}
			voteIDs[i] = r.Str("vote_id")
		}()
	}
	wg.Wait()
	later := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]},
		"Idempotency-Key", key).Must(t, http.StatusOK)
	voteIDs[5] = later.Str("vote_id")
	for i, id := range voteIDs {
		if id == "" || id != voteIDs[0] {
			t.Fatalf("attempt %d got vote_id %q, want %q for all", i, id, voteIDs[0])
		}
	}
	// A different key from the same voter is a second vote: refused.
	other := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]},
		"Idempotency-Key", "another")
	if other.Status != http.StatusConflict || other.Code() != "ALREADY_VOTED" {
		t.Fatalf("other key: %d %s", other.Status, other.Raw)
	}
	if rows := e.voteRows(t, pollID); len(rows) != 1 {
		t.Fatalf("%d vote rows, want 1", len(rows))
	}
	total, votes := e.c.Results(owner, pollID, "live")
	if total != 1 || votes[opts[1]] != 1 {
		t.Fatalf("live tally %d %v, want 1 vote for option 1", total, votes)
	}
}

func TestTwoHundredVotersFinalAndLiveEqualRows(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	tokens := make([]string, 200)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			tokens[i], _ = e.c.Account()
		}()
	}
	wg.Wait()
	for i := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tokens[i], map[string]any{"option_id": opts[i%3]}).
				Must(t, http.StatusOK)
		}()
	}
	wg.Wait()

	rows := e.voteRows(t, pollID)
	if len(rows) != 200 {
		t.Fatalf("%d vote rows, want 200", len(rows))
	}
	want := map[string]int64{}
	for _, o := range rows {
		want[o[0].String()]++
	}
	for _, mode := range []string{"final", "live"} {
		testenv.Eventually(t, 5e9, func() error {
			total, votes := e.c.Results(owner, pollID, mode)
			if total != 200 {
				return fmt.Errorf("%s total %d, want 200", mode, total)
			}
			for _, o := range opts {
				if votes[o] != want[o] {
					return fmt.Errorf("%s option %s: %d, rows say %d", mode, o, votes[o], want[o])
				}
			}
			return nil
		})
	}
}
