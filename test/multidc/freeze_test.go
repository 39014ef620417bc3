//go:build multidc

package multidc

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestCloseWaitsForEveryRegionsQueue (issue 19, hole 6): region a accepts
// votes and then stops (SIGSTOP, its worker with it) before applying them;
// the owner closes the poll through region b. Region b's own queue is past
// the poll, but the final tally must not be frozen until region a's queue
// is too: frozen without it, IF NOT EXISTS would keep the wrong number for
// good. After region a resumes and drains, the frozen final holds every
// accepted vote.
func TestCloseWaitsForEveryRegionsQueue(t *testing.T) {
	const inA, inB = 40, 10
	cl := newCluster(t)
	a, b := cl.regions[0], cl.regions[1]
	owner, _ := b.c.Account()
	pollID, opts := b.c.Poll(owner, map[string]any{"allow_anonymous": true, "show_results_during_voting": true})
	tokens := anonymous(t, b.c, inA+inB)

	// Both regions have recorded a drain point (they do every second once
	// their queue is caught up), so each knows the other exists.
	sess, err := cassandra.Connect(cl.cass, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	testenv.Eventually(t, 30*time.Second, func() error {
		if !regionDrains() {
			return nil
		}
		n := 0
		iter := sess.Session.Query(`SELECT region FROM region_drains`).Consistency(gocql.LocalQuorum).Iter()
		var r string
		for iter.Scan(&r) {
			n++
		}
		if err := iter.Close(); err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%d regions recorded a drain point", n)
		}
		return nil
	})

	for _, tok := range tokens[inA:] {
		resp, _ := b.vote(t, tok, pollID, opts[1])
		resp.Must(t, http.StatusAccepted)
	}
	b.drained(t, time.Minute)
	// Region a answers 202 (the votes are in its queue) and stops at once.
	// Its worker's poll is fetched per batch, so some of these may already
	// be applied; most are not.
	accepted := map[string]string{} // token → request id
	for _, tok := range tokens[:inA] {
		resp, _ := a.vote(t, tok, pollID, opts[0])
		accepted[tok] = resp.Must(t, http.StatusAccepted).Str("request_id")
	}
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	resume := func() {
		if stopped {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
			stopped = false
		}
	}
	defer resume()

	b.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	closed := time.Now()

	frozen := func() (int64, bool) {
		var ballots int64
		err := sess.Session.Query(`SELECT ballots FROM final_tallies WHERE poll_id = ? LIMIT 1`, pollID).
			Consistency(gocql.LocalQuorum).WithContext(context.Background()).Scan(&ballots)
		if err == gocql.ErrNotFound {
			return 0, false
		}
		if err != nil {
			t.Fatalf("read final_tallies: %v", err)
		}
		return ballots, true
	}
	// Past the close grace (2 s), the produce allowance (5 s) and a few
	// rounds of region b's freezer: before the fix it froze here.
	time.Sleep(15 * time.Second)
	if n, ok := frozen(); ok {
		t.Fatalf("region b froze the final tally at %d ballots %s after the close, with region a's queue not drained (%d+%d accepted)",
			n, time.Since(closed).Round(time.Second), inA, inB)
	}
	resume()
	a.drained(t, 2*time.Minute)
	testenv.Eventually(t, time.Minute, func() error {
		n, ok := frozen()
		if !ok {
			return fmt.Errorf("final tally not frozen yet")
		}
		if n != inA+inB {
			t.Fatalf("final tally frozen at %d ballots, want %d", n, inA+inB)
		}
		return nil
	})
	t.Logf("frozen with every region's votes %s after the close", time.Since(closed).Round(100*time.Millisecond))
	for tok, req := range accepted {
		if state, code := a.status(t, tok, pollID, req); state != "completed" {
			t.Errorf("region a request %s is %s %s", req, state, code)
		}
	}
	cl.expectConverged(t, owner, pollID, inA+inB)
}
