//go:build integration

package vote_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestFollowUpFailureHoldsTheOffset makes the index writes fail for real:
// the per-poll index table is dropped while votes drain, then recreated.
// The worker must retry the follow-ups before it commits, so every ballot
// row ends up indexed and final equals the rows.
func TestFollowUpFailureHoldsTheOffset(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Worker.MaxBackoff = 200 * time.Millisecond
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 60)
	cql := e.app.CQL.Session
	// The table comes back exactly as the migrations left it (server-side
	// DESCRIBE), whatever columns later migrations add.
	var ddl string
	if err := cql.Query(`DESCRIBE TABLE votes_by_poll`).Scan(nil, nil, nil, &ddl); err != nil {
		t.Fatalf("describe votes_by_poll: %v", err)
	}
	if err := cql.Query(`DROP TABLE votes_by_poll`).Exec(); err != nil {
		t.Fatal(err)
	}
	for i, tok := range voters {
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[i%3]}).Must(t, http.StatusAccepted)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := len(rows(t, e.app, pollID)); n == 0 {
			return fmt.Errorf("no ballot row yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // the follow-ups fail and are retried meanwhile
	if err := cql.Query(ddl).Exec(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(rows(t, e.app, pollID)); n != len(voters) {
			return fmt.Errorf("%d rows of %d", n, len(voters))
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		if total, _ := e.c.Results(owner, pollID, "final"); total != int64(len(voters)) {
			return fmt.Errorf("final %d of %d rows: ballot rows no tally counts", total, len(voters))
		}
		return nil
	})
	expectConverged(t, e, owner, pollID, opts)
}

// TestSyncVoteCompletesWhenClientLeaves sends synchronous votes whose
// clients give up after a random few milliseconds, so they disconnect at
// every point of the vote's path. Every ballot row that exists must be
// indexed and counted.
func TestSyncVoteCompletesWhenClientLeaves(t *testing.T) {
	cfg := testenv.Config(t)
	e := start(t, cfg, false)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 150)
	var wg sync.WaitGroup
	var gaveUp atomic.Int64
	for i, tok := range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: time.Duration(1+rand.IntN(150)) * time.Millisecond}
			body := fmt.Sprintf(`{"option_id":%q}`, opts[i%3])
			req, _ := http.NewRequest("POST", e.c.Base+"/v1/polls/"+pollID+"/votes", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				gaveUp.Add(1)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	t.Logf("%d of %d clients gave up before the answer", gaveUp.Load(), len(voters))
	time.Sleep(3 * time.Second) // let abandoned votes finish server-side
	stored := rows(t, e.app, pollID)
	total, _ := e.c.Results(owner, pollID, "final")
	if total != int64(len(stored)) {
		t.Fatalf("final %d, rows %d: a client disconnect left ballots uncounted", total, len(stored))
	}
	expectConverged(t, e, owner, pollID, opts)
}

// TestReconcileUnderLoadRepairsNothing reconciles a poll again and again
// while votes stream into it. The counters are right all along: no run may
// repair anything, and live must equal the rows at the end.
func TestReconcileUnderLoadRepairsNothing(t *testing.T) {
	cfg := asyncConfig(t)
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	pid, _ := id.Parse(pollID)
	voters := tokens(t, e.c, 400)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sem := make(chan struct{}, 8)
		var inner sync.WaitGroup
		for i, tok := range voters {
			sem <- struct{}{}
			inner.Add(1)
			go func() {
				defer func() { <-sem; inner.Done() }()
				e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[i%3]})
			}()
			time.Sleep(10 * time.Millisecond)
		}
		inner.Wait()
		close(stop)
	}()
	runs, busy := 0, 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		rep, err := e.app.Reconcile(context.Background(), pid, false, nil)
		if err == tally.ErrBusy {
			busy++
			continue
		}
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		runs++
		if !rep.CounterDrift.IsZero() {
			t.Fatalf("run %d under load found drift %+v (rows %d, counters %d) where there is none",
				runs, rep.CounterDrift, rep.Rows.Ballots, rep.Counters.Ballots)
		}
	}
	wg.Wait()
	t.Logf("%d reconciliations under load, %d refused as concurrent, none repaired anything", runs, busy)
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := len(rows(t, e.app, pollID)); n != len(voters) {
			return fmt.Errorf("%d rows", n)
		}
		// A row exists before its index row: wait for the last follow-ups.
		if total, _ := e.c.Results(owner, pollID, "final"); total != int64(len(voters)) {
			return fmt.Errorf("final %d of %d rows: follow-ups still in flight", total, len(voters))
		}
		return nil
	})
	expectConverged(t, e, owner, pollID, opts)
}

// TestFinalFrozenUnderSteadyTrafficAndNeverThaws closes one poll while
// votes keep flowing into another: the closed poll's final tally is frozen
// without waiting for the whole topic to drain, and later reconciliations
// leave it frozen.
func TestFinalFrozenUnderSteadyTrafficAndNeverThaws(t *testing.T) {
	cfg := asyncConfig(t)
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	closing, copts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	busy, bopts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	cid, _ := id.Parse(closing)
	voters := tokens(t, e.c, 320)
	for i, tok := range voters[:20] {
		e.c.Do("POST", "/v1/polls/"+closing+"/votes", tok, map[string]any{"option_id": copts[i%3]}).Must(t, http.StatusAccepted)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady traffic on the other poll
		defer wg.Done()
		for i, tok := range voters[20:] {
			select {
			case <-stop:
				return
			default:
			}
			e.c.Do("POST", "/v1/polls/"+busy+"/votes", tok, map[string]any{"option_id": bopts[i%3]})
			time.Sleep(40 * time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	e.c.Do("PATCH", "/v1/polls/"+closing, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	var frozen tally.Frozen
	testenv.Eventually(t, 40*time.Second, func() error {
		f, found, err := cassandra.NewTallyStore(e.app.CQL).LoadFinal(context.Background(), cid)
		if err != nil || !found {
			return fmt.Errorf("final tally not frozen yet (%v)", err)
		}
		frozen = f
		return nil
	})
	if frozen.Counts.Ballots != 20 {
		t.Fatalf("frozen ballots %d, want 20", frozen.Counts.Ballots)
	}
	// A later non-final run must not thaw it.
	if _, err := e.app.Reconcile(context.Background(), cid, false, nil); err != nil {
		t.Fatal(err)
	}
	f, found, err := cassandra.NewTallyStore(e.app.CQL).LoadFinal(context.Background(), cid)
	if err != nil || !found || !f.AsOf.Equal(frozen.AsOf) {
		t.Fatalf("final tally thawed or changed: %+v %v %v", f, found, err)
	}
	total, _ := e.c.Results(owner, closing, "final")
	if total != 20 {
		t.Fatalf("final results %d", total)
	}
}
