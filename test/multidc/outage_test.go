//go:build multidc

package multidc

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestDCOutageNothingLost: dc2's node hangs (SIGSTOP). Both regions keep
// answering 202 (the accept path needs Kafka, Redis and a cached poll, not
// Cassandra); no request fails while the node is away; when it comes back
// every accepted vote is applied exactly once and both regions serve the
// same results.
//
// At SERIAL with one replica per DC, a Paxos quorum needs both nodes, so
// during the outage neither region's worker can apply a ballot: they hold
// their batches and drain after (docs/multi-region.md, "DC outage").
func TestDCOutageNothingLost(t *testing.T) {
	const (
		warm      = 10 // voters before the outage, through both regions
		duringA   = 100
		duringB   = 50
		outageFor = 15 * time.Second
	)
	cl := newCluster(t)
	a, b := cl.regions[0], cl.regions[1]
	owner, _ := a.c.Account()
	pollID, opts := a.c.Poll(owner, map[string]any{"allow_anonymous": true, "show_results_during_voting": true})
	tokens := anonymous(t, a.c, warm+duringA+duringB)

	type req struct {
		r              *region
		token, request string
	}
	var (
		mu   sync.Mutex
		reqs []req
	)
	send := func(r *region, toks []string, opt string) []time.Duration {
		var (
			wg  sync.WaitGroup
			lat []time.Duration
			sem = make(chan struct{}, 16)
			lmu sync.Mutex
		)
		for _, tok := range toks {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				resp, took := r.vote(t, tok, pollID, opt)
				if resp.Status != http.StatusAccepted {
					t.Errorf("region %s: %d %s", r.name, resp.Status, resp.Raw)
					return
				}
				mu.Lock()
				reqs = append(reqs, req{r, tok, resp.Str("request_id")})
				mu.Unlock()
				lmu.Lock()
				lat = append(lat, took)
				lmu.Unlock()
			}()
		}
		wg.Wait()
		return lat
	}

	// Warm both regions (poll cache, frozen options) and check the cluster.
	send(a, tokens[:warm/2], opts[0])
	send(b, tokens[warm/2:warm], opts[1])
	a.drained(t, time.Minute)
	b.drained(t, time.Minute)

	resume := pauseNode(t, "dc2")
	paused := time.Now()
	latA := send(a, tokens[warm:warm+duringA], opts[0])
	latB := send(b, tokens[warm+duringA:], opts[1])
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("dc2 hung: region a accepted %d (202 p50 %s p99 %s), region b accepted %d (202 p50 %s p99 %s)",
		len(latA), percentile(latA, 0.5), percentile(latA, 0.99), len(latB), percentile(latB, 0.5), percentile(latB, 0.99))
	time.Sleep(time.Until(paused.Add(outageFor)))

	// While dc2 is away region a can still read its own DC: nothing it
	// accepted has failed (a failure would be a dead-lettered, lost vote).
	pending, completed := 0, 0
	for _, q := range reqs {
		if q.r != a {
			continue
		}
		state, code := a.status(t, q.token, pollID, q.request)
		switch state {
		case "pending":
			pending++
		case "completed":
			completed++
		default:
			t.Errorf("during the outage request %s is %s %s", q.request, state, code)
		}
	}
	t.Logf("after %s of outage, region a's requests: %d pending, %d completed; workers: a %v, b %v",
		outageFor, pending, completed+warm/2, a.workerResults(t), b.workerResults(t))

	resume()
	resumed := time.Now()
	a.drained(t, 3*time.Minute)
	b.drained(t, 3*time.Minute)
	t.Logf("both regions drained %s after dc2 came back", time.Since(resumed).Round(100*time.Millisecond))

	total := warm + duringA + duringB
	for _, q := range reqs {
		if state, code := q.r.status(t, q.token, pollID, q.request); state != "completed" {
			t.Errorf("region %s request %s is %s %s after the outage", q.r.name, q.request, state, code)
		}
	}
	var recorded float64
	for _, r := range cl.regions {
		m := r.workerResults(t)
		t.Logf("region %s worker: %v", r.name, m)
		// A ballot whose LWT timed out against the hung node and that the
		// retry found applied is counted as "replayed" (its index row was
		// missing, so it is counted then); no voter here voted twice.
		recorded += m["recorded"] + m["replayed"]
		if m["dead_lettered"] > 0 {
			t.Errorf("region %s dead-lettered %.0f votes", r.name, m["dead_lettered"])
		}
	}
	if recorded != float64(total) {
		t.Errorf("recorded %.0f ballots for %d accepted votes", recorded, total)
	}
	cl.expectConverged(t, owner, pollID, int64(total))
}
