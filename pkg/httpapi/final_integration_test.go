//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/config"
)

// Many readers of tally=final on an active poll cause one count of its rows
// per FinalMinInterval, not one per cache expiry (the Redis cache lives
// 200 ms here) or per reader; between counts they get the last count with
// its as_of.
func TestFinalReadsAreSpacedOut(t *testing.T) {
	const interval = 3 * time.Second
	e := newLimitsEnv(t, func(c *config.Config) { c.Tally.FinalMinInterval = interval })
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	for range 3 {
		voter, _ := e.c.Account()
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	}
	scans := func() float64 { return metric(t, e.app.Registry, "tally_final_scans_total") }
	before := scans()

	path := "/v1/polls/" + pollID + "/results?tally=final"
	var reads atomic.Int64
	asOfs := sync.Map{}
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				r := e.c.Do("GET", path, owner, nil)
				if r.Status != http.StatusOK || r.Body["total_votes"].(float64) != 3 {
					t.Errorf("final: %d %s", r.Status, r.Raw)
					return
				}
				asOfs.Store(r.Str("as_of"), true)
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	n := 0
	asOfs.Range(func(any, any) bool { n++; return true })
	if got := scans() - before; got != 1 || n != 1 {
		t.Fatalf("%d final reads over 1.5 s made %v counts with %d as_of values, want 1", reads.Load(), got, n)
	}
	t.Logf("%d final reads, 1 count", reads.Load())

	// A vote after the count shows once the interval has passed.
	voter, _ := e.c.Account()
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	if total, _ := e.c.Results(owner, pollID, "final"); total != 3 {
		t.Fatalf("inside the interval: total %d, want the last count (3)", total)
	}
	deadline := time.Now().Add(interval + 3*time.Second)
	for {
		total, _ := e.c.Results(owner, pollID, "final")
		if total == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("the new vote never showed in final (total %d)", total))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := scans() - before; got != 2 {
		t.Fatalf("%v counts, want 2", got)
	}
}
