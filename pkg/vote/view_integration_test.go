//go:build integration

package vote_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// votedAt reads each voter's voted_at for a poll straight from the votes
// table.
func votedAt(t *testing.T, e *env, pollID string) map[id.ID]time.Time {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id, voter_id, voted_at FROM votes`).Iter()
	out := map[id.ID]time.Time{}
	var (
		p, v id.ID
		at   time.Time
	)
	for iter.Scan(&p, &v, &at) {
		if p == pid {
			out[v] = at
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan votes: %v", err)
	}
	return out
}

// TestCloseThroughOneAPIEnforcedByAnother runs two API processes on one
// stack. The owner closes the poll through A; B, which holds a warm view of
// the poll, must refuse votes (409 POLL_NOT_ACTIVE) within 1 s. The views'
// refresh period is set far above 1 s here, so only the change notice can
// make it in time. Every vote B accepted is stored, no refused one is, and
// nothing B accepted after it began refusing exists.
func TestCloseThroughOneAPIEnforcedByAnother(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Poll.CacheTTL = 4 * time.Second
	a := start(t, cfg, true)
	_, srvB := testenv.Server(t, cfg)
	b := testenv.NewClient(t, srvB.URL)

	owner, _ := a.c.Account()
	pollID, opts := a.c.Poll(owner, map[string]any{"allow_anonymous": true})
	path := "/v1/polls/" + pollID + "/votes"
	voters := tokens(t, a.c, 60)
	accepted := 0
	for _, tok := range voters[:5] { // B's view of the poll is warm
		b.Do("POST", path, tok, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
		accepted++
	}

	a.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	closed := time.Now()
	var refusedAfter time.Duration
	acceptedAfterClose := 0
	next := 5
	for ; refusedAfter == 0; next++ {
		if next == len(voters) {
			t.Fatal("ran out of voters before B refused")
		}
		r := b.Do("POST", path, voters[next], map[string]any{"option_id": opts[1]})
		switch {
		case r.Status == http.StatusAccepted:
			accepted++
			acceptedAfterClose++
		case r.Status == http.StatusConflict && r.Code() == "POLL_NOT_ACTIVE":
			refusedAfter = time.Since(closed)
		default:
			t.Fatalf("vote on B after the close: %d %s", r.Status, r.Raw)
		}
		if refusedAfter == 0 && time.Since(closed) > time.Second {
			t.Fatalf("B still accepts votes %s after the close through A", time.Since(closed).Round(time.Millisecond))
		}
	}
	refusing := time.Now()
	t.Logf("B refused %s after the close (%d votes accepted in between)", refusedAfter.Round(time.Microsecond),
		acceptedAfterClose)
	if refusedAfter > time.Second {
		t.Fatalf("B refused only %s after the close", refusedAfter)
	}
	for _, tok := range voters[next:] {
		for _, c := range []*testenv.Client{b, a.c} {
			if r := c.Do("POST", path, tok, map[string]any{"option_id": opts[2]}); r.Status != http.StatusConflict ||
				r.Code() != "POLL_NOT_ACTIVE" {
				t.Fatalf("vote after B began refusing: %d %s, want 409 POLL_NOT_ACTIVE", r.Status, r.Raw)
			}
		}
	}

	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(rows(t, a.app, pollID)); n != accepted {
			return fmt.Errorf("%d rows, %d votes accepted", n, accepted)
		}
		return nil
	})
	time.Sleep(time.Second) // anything refused that slipped through would land now
	stored := votedAt(t, a, pollID)
	if len(stored) != accepted {
		t.Fatalf("%d rows, %d votes accepted: a refused vote was written", len(stored), accepted)
	}
	for voter, at := range stored {
		if !at.Before(refusing) {
			t.Fatalf("voter %s has a row voted at %s, after B refused votes (%s)", voter, at, refusing)
		}
	}
	for _, tok := range voters[next-1:] {
		if r := b.Do("GET", path+"/me", tok, nil).Must(t, http.StatusOK); r.Body["has_voted"] != false {
			t.Fatalf("a refused voter has a vote: %s", r.Raw)
		}
	}
}

// TestVotesDoNotWaitOnAPausedCassandra freezes the real Cassandra (SIGSTOP)
// under a warm poll whose view is past its refresh period: votes are
// answered from the view and Kafka, never waiting on a re-read (the old
// cache held each for its 300 ms stall). After SIGCONT every accepted vote
// is a row in votes and counted.
func TestVotesDoNotWaitOnAPausedCassandra(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Worker.MaxBackoff = 300 * time.Millisecond
	cfg.Cassandra.Timeout = time.Second
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	path := "/v1/polls/" + pollID + "/votes"
	const n = 150
	voters := tokens(t, e.c, n+1)
	// The first vote warms the API's view and freezes the options.
	e.c.Do("POST", path, voters[0], map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(rows(t, e.app, pollID)) != 1 {
			return fmt.Errorf("first vote not drained")
		}
		return nil
	})

	resume := testenv.Pause(t, "cassandra")
	paused := time.Now()
	time.Sleep(3 * cfg.Poll.CacheTTL) // every view is past due for a re-read
	lat := make([]time.Duration, n)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				began := time.Now()
				r := e.c.Do("POST", path, voters[i+1], map[string]any{"option_id": opts[i%len(opts)]},
					"Idempotency-Key", fmt.Sprintf("paused-%d", i))
				lat[i] = time.Since(began)
				if r.Status != http.StatusAccepted {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("vote %d: %d %s", i, r.Status, r.Raw))
					mu.Unlock()
				}
				// Spread over seconds, so votes meet background re-reads
				// timing out against the frozen server.
				time.Sleep(60 * time.Millisecond)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	resume()
	t.Logf("Cassandra frozen for %s", time.Since(paused).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Fatalf("%d of %d votes not accepted while Cassandra was frozen: %v", len(failed), n, failed[:min(len(failed), 5)])
	}
	slices.Sort(lat)
	p50, p99, worst := lat[n/2], lat[(n*99+99)/100-1], lat[n-1]
	t.Logf("%d votes with Cassandra frozen: p50 %s, p99 %s, max %s", n, p50.Round(time.Microsecond),
		p99.Round(time.Microsecond), worst.Round(time.Microsecond))
	if p99 >= 100*time.Millisecond {
		t.Fatalf("p99 %s with Cassandra frozen: votes waited on it", p99)
	}

	testenv.Eventually(t, 60*time.Second, func() error {
		if got := len(rows(t, e.app, pollID)); got != n+1 {
			return fmt.Errorf("%d rows, %d votes accepted", got, n+1)
		}
		return nil
	})
	expectConverged(t, e, owner, pollID, opts)
}
