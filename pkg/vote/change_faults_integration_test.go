//go:build integration

package vote_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// changeState is one voter's row or index entry, read with plain CQL.
type changeState struct {
	options []id.ID
	version int
	revoked bool
}

func changeRows(t *testing.T, e *env, pollID string, table string) map[id.ID]changeState {
	t.Helper()
	pid, _ := id.Parse(pollID)
	q := `SELECT poll_id, voter_id, option_ids, version, revoked FROM votes`
	if table == "index" {
		q = `SELECT poll_id, voter_id, options, version, revoked FROM votes_by_poll`
	}
	iter := e.app.CQL.Session.Query(q).Iter()
	out := map[id.ID]changeState{}
	var (
		p, v    id.ID
		opts    []id.ID
		version *int
		revoked *bool
	)
	for iter.Scan(&p, &v, &opts, &version, &revoked) {
		if p == pid {
			s := changeState{options: opts, revoked: revoked != nil && *revoked}
			if version != nil {
				s.version = *version
			}
			out[v] = s
		}
		opts, version, revoked = nil, nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan %s: %v", table, err)
	}
	return out
}

// answer is what a request got, to compare its retry with.
type answer struct {
	status    int
	code      string
	state     string // status field: changed, revoked, accepted
	version   float64
	voteID    string
	requestID string
}

func answerOf(r testenv.Response) answer {
	v, _ := r.Body["version"].(float64)
	return answer{status: r.Status, code: r.Code(), state: r.Str("status"), version: v, voteID: r.Str("vote_id"), requestID: r.Str("request_id")}
}

// TestChangesAndRevokesWhileTheWorkerIsKilled is issue 22's done-when run:
// 500 voters vote through the queue, then change (all), revoke (half) and
// vote again (a quarter, through the queue) concurrently, while a real
// `tally worker` process is SIGKILLed twice. Afterwards rows, index and
// frozen final agree, no revoked ballot is counted, the live tally equals
// the rows after reconciliation, and every request retried with its key
// gets its original outcome.
func TestChangesAndRevokesWhileTheWorkerIsKilled(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Worker.Concurrency = 8
	cfg.Worker.BatchSize = 256
	e := start(t, cfg, false) // the API only; the worker is a separate process
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "allow_vote_change": true, "max_vote_changes": 10})
	base := "/v1/polls/" + pollID + "/votes"
	const n = 500
	voters := tokens(t, e.c, n)

	// Every voter's first vote, queued.
	first := make([]answer, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, tok := range voters {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			first[i] = answerOf(e.c.Do("POST", base, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "v1"))
		}()
	}
	wg.Wait()
	for i, a := range first {
		if a.status != http.StatusAccepted {
			t.Fatalf("vote %d: %+v", i, a)
		}
	}

	// The killer: SIGKILL the worker at 150 rows and again at 350, each
	// time starting another; the last runs to the end.
	kill := startWorkerApart(t, cfg)
	var kills atomic.Int32
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for _, at := range []int{150, 350} {
			deadline := time.Now().Add(90 * time.Second)
			for countRows(t, e) < at && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			kill()
			kills.Add(1)
			t.Logf("worker SIGKILLed at %d rows", countRows(t, e))
			kill = startWorkerApart(t, cfg)
		}
	}()

	// Each voter changes once, half revoke, a quarter vote again, each
	// step queued (202) and awaited before the next, as a client would. A
	// change refused while the vote is still being recorded (409) is
	// retried with the same key until it is accepted.
	changes, revokes, again := make([]answer, n), make([]answer, n), make([]answer, n)
	until := func(method, path, tok string, body any, key string, ok int) answer {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			r := e.c.Do(method, path, tok, body, "Idempotency-Key", key)
			if r.Status == ok || time.Now().After(deadline) {
				return answerOf(r)
			}
			if r.Code() != "VOTE_CHANGE_CONFLICT" && r.Status != http.StatusServiceUnavailable {
				return answerOf(r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	completed := func(tok, rid string) error {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st := e.c.Do("GET", base+"/requests/"+rid, tok, nil)
			switch {
			case st.Str("state") == "completed":
				return nil
			case st.Str("state") == "failed" || time.Now().After(deadline):
				return fmt.Errorf("request %s: %s", rid, st.Raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i, tok := range voters {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			changes[i] = until("PUT", base+"/me", tok, map[string]any{"option_id": opts[(i+1)%3]}, "c1", http.StatusAccepted)
			if err := completed(tok, changes[i].requestID); err != nil {
				t.Errorf("change %d: %v", i, err)
				return
			}
			if i%2 == 0 {
				revokes[i] = until("DELETE", base+"/me", tok, nil, "r1", http.StatusAccepted)
				if err := completed(tok, revokes[i].requestID); err != nil {
					t.Errorf("revoke %d: %v", i, err)
					return
				}
			}
			if i%4 == 0 {
				again[i] = until("POST", base, tok, map[string]any{"option_id": opts[(i+2)%3]}, "v2", http.StatusAccepted)
			}
		}()
	}
	wg.Wait()
	<-killerDone
	if kills.Load() != 2 {
		t.Fatalf("worker killed %d times", kills.Load())
	}
	if t.Failed() {
		t.FailNow()
	}
	for i := range n {
		if changes[i].status != http.StatusAccepted || changes[i].requestID == "" {
			t.Fatalf("change %d: %+v", i, changes[i])
		}
		if i%2 == 0 && revokes[i].status != http.StatusAccepted {
			t.Fatalf("revoke %d: %+v", i, revokes[i])
		}
		if i%4 == 0 && again[i].status != http.StatusAccepted {
			t.Fatalf("vote again %d: %+v", i, again[i])
		}
	}
	// Every queued request completes: the first votes and the votes cast
	// again.
	for i, tok := range voters {
		for _, a := range []answer{first[i], again[i]} {
			if a.requestID == "" {
				continue
			}
			testenv.Eventually(t, 2*time.Minute, func() error {
				st := e.c.Do("GET", base+"/requests/"+a.requestID, tok, nil)
				if st.Str("state") != "completed" {
					return fmt.Errorf("voter %d request %s: %s", i, a.requestID, st.Raw)
				}
				return nil
			})
		}
	}

	// Rows: one per voter; revoked exactly for those that revoked and did
	// not vote again; at the version of their last change.
	stored := changeRows(t, e, pollID, "votes")
	if len(stored) != n {
		t.Fatalf("%d rows, want %d", len(stored), n)
	}
	want := map[string]int64{}
	var ballots int64
	for _, r := range stored {
		if !r.revoked {
			ballots++
			for _, o := range r.options {
				want[o.String()]++
			}
		}
	}
	if exp := int64(n - n/2 + n/4); ballots != exp {
		t.Fatalf("%d current ballots, want %d", ballots, exp)
	}
	index := changeRows(t, e, pollID, "index")
	for v, r := range stored {
		x, ok := index[v]
		if !ok || x.version != r.version || x.revoked != r.revoked || (!r.revoked && !slices.Equal(x.options, r.options)) {
			t.Fatalf("voter %s: row %+v, index %+v", v, r, x)
		}
		if r.version != 1 && r.version != 2 && r.version != 3 {
			t.Fatalf("voter %s at version %d", v, r.version)
		}
	}

	// Every request retried with its key gets its original outcome.
	for i, tok := range voters {
		// A queued change's retry is answered from the row: its own
		// request, kind and version, the ballot's vote id.
		if a := answerOf(e.c.Do("PUT", base+"/me", tok, map[string]any{"option_id": opts[(i+1)%3]}, "Idempotency-Key", "c1")); a.status != 200 || a.version != 1 || a.state != "changed" || a.requestID != changes[i].requestID || a.voteID == "" {
			t.Fatalf("retried change %d: %+v, first %+v", i, a, changes[i])
		}
		if i%2 == 0 {
			if a := answerOf(e.c.Do("DELETE", base+"/me", tok, nil, "Idempotency-Key", "r1")); a.status != 200 || a.version != 2 || a.state != "revoked" || a.requestID != revokes[i].requestID {
				t.Fatalf("retried revoke %d: %+v", i, a)
			}
		}
		r := e.c.Do("POST", base, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "v1")
		if (r.Status != http.StatusAccepted && r.Status != http.StatusOK) || r.Str("request_id") != first[i].requestID {
			t.Fatalf("retried first vote %d: %d %s", i, r.Status, r.Raw)
		}
	}
	// The retries wrote nothing: the rows are as they were.
	testenv.Eventually(t, time.Minute, func() error {
		after := changeRows(t, e, pollID, "votes")
		for v, r := range stored {
			if a := after[v]; a.version != r.version || a.revoked != r.revoked {
				return fmt.Errorf("voter %s changed by a retry: %+v -> %+v", v, r, a)
			}
		}
		return nil
	})

	// Live equals the rows after reconciliation; the frozen final equals
	// the rows.
	pid, _ := id.Parse(pollID)
	rep, err := e.app.Reconcile(context.Background(), pid, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reconciliation: rows %d, counters had %d, ballot drift %d", rep.Rows.Ballots, rep.Counters.Ballots, rep.CounterDrift.Ballots)
	testenv.Eventually(t, 10*time.Second, func() error {
		total, votes := e.c.Results(owner, pollID, "live")
		if total != ballots {
			return fmt.Errorf("live %d ballots, rows %d", total, ballots)
		}
		for _, o := range opts {
			if votes[o] != want[o] {
				return fmt.Errorf("live %s %d, rows %d", o, votes[o], want[o])
			}
		}
		return nil
	})
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	p, err := e.app.Polls.Get(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Tally.Reconcile(context.Background(), p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	total, votes := e.c.Results(owner, pollID, "final")
	if total != ballots {
		t.Fatalf("final %d ballots, rows %d", total, ballots)
	}
	for _, o := range opts {
		if votes[o] != want[o] {
			t.Fatalf("final %s %d, rows %d", o, votes[o], want[o])
		}
	}
}
