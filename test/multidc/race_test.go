//go:build multidc

package multidc

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestSameVoterBothRegionsCountsOnce: every voter sends a ballot to region
// a and another to region b at the same moment, through the real HTTP API
// of two real processes. Both regions accept (their Redis flags cannot see
// each other); the LWT at SERIAL lets exactly one ballot per voter win
// across the DCs, so exactly one request per voter completes, the other
// fails ALREADY_VOTED, the workers record one ballot per voter between
// them, and the counters in both DCs sum to the number of voters.
//
// With TALLY_MULTIDC_SERIAL=LOCAL_SERIAL each DC runs its own Paxos, both
// ballots of a racing voter apply, and this test fails (see
// docs/multi-region.md for both runs).
func TestSameVoterBothRegionsCountsOnce(t *testing.T) {
	const voters = 300
	cl := newCluster(t)
	a := cl.regions[0]
	owner, _ := a.c.Account()
	pollID, opts := a.c.Poll(owner, map[string]any{"allow_anonymous": true, "show_results_during_voting": true})
	tokens := anonymous(t, a.c, voters)

	type sent struct{ request [2]string }
	results := make([]sent, voters)
	var (
		mu        sync.Mutex
		latencies [2][]time.Duration
	)
	// 16 voters at a time, each voter's two requests released together.
	cl.bothRegionsAtOnce(voters, func(i, ri int, r *region) {
		// Each region gets another option, so a double count also
		// shows as a divergence between live and final.
		resp, took := r.vote(t, tokens[i], pollID, opts[ri])
		if resp.Status != http.StatusAccepted {
			t.Errorf("voter %d region %s: %d %s", i, r.name, resp.Status, resp.Raw)
			return
		}
		mu.Lock()
		results[i].request[ri] = resp.Str("request_id")
		latencies[ri] = append(latencies[ri], took)
		mu.Unlock()
	})
	if t.Failed() {
		t.FailNow()
	}
	for ri, r := range cl.regions {
		t.Logf("region %s: %d accepted, 202 p50 %s p99 %s", r.name, len(latencies[ri]),
			percentile(latencies[ri], 0.50), percentile(latencies[ri], 0.99))
	}
	for _, r := range cl.regions {
		r.drained(t, 2*time.Minute)
	}

	// What the workers did: between them, one recorded ballot per voter.
	var recorded, duplicate float64
	for _, r := range cl.regions {
		m := r.workerResults(t)
		t.Logf("region %s worker: %v", r.name, m)
		// "replayed": this region's LWT outcome was unknown and the retry
		// found its own row, which it counts then; still this region's win.
		recorded += m["recorded"] + m["replayed"]
		duplicate += m["duplicate"]
	}
	if recorded != voters {
		t.Errorf("the regions' workers recorded %.0f ballots for %d voters (%.0f duplicates): a voter was recorded in both DCs",
			recorded, voters, duplicate)
	}

	// What each voter sees: one request completed, the other a duplicate.
	var twice, none int
	for i, s := range results {
		completed := 0
		for ri, r := range cl.regions {
			state, code := r.status(t, tokens[i], pollID, s.request[ri])
			switch {
			case state == "completed":
				completed++
			case state == "failed" && code == "ALREADY_VOTED":
			default:
				t.Errorf("voter %d region %s: request %s is %s %s", i, r.name, s.request[ri], state, code)
			}
		}
		switch completed {
		case 0:
			none++
		case 2:
			twice++
		}
	}
	if twice+none > 0 {
		t.Errorf("%d voters have two completed requests, %d none", twice, none)
	}

	// What the counters say, read from either region: one per voter.
	cl.expectConverged(t, owner, pollID, voters)
}
