//go:build multidc

package multidc

import (
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestMeasureRegions measures what the safeguard costs: each region takes
// its own voters (normal traffic, no races), and the test reports the 202
// latency per region and how fast each region's worker applies. It runs
// only with TALLY_MULTIDC_MEASURE=N (voters per region); the figures and
// the commands are in docs/multi-region.md. It still checks the outcome:
// every vote applied once, both regions converged.
func TestMeasureRegions(t *testing.T) {
	perRegion, _ := strconv.Atoi(os.Getenv("TALLY_MULTIDC_MEASURE"))
	if perRegion <= 0 {
		t.Skip("set TALLY_MULTIDC_MEASURE=<voters per region> to measure")
	}
	cl := newCluster(t)
	a := cl.regions[0]
	owner, _ := a.c.Account()
	pollID, opts := a.c.Poll(owner, map[string]any{"allow_anonymous": true, "show_results_during_voting": true})
	tokens := anonymous(t, a.c, 2*perRegion)
	// Warm each region (poll cache, frozen options) with one vote.
	for ri, r := range cl.regions {
		r.vote(t, tokens[ri*perRegion], pollID, opts[ri])
	}
	for _, r := range cl.regions {
		r.drained(t, time.Minute)
	}

	var wg sync.WaitGroup
	start := time.Now()
	lat := make([][]time.Duration, len(cl.regions))
	drainedAt := make([]time.Duration, len(cl.regions))
	for ri, r := range cl.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks := tokens[ri*perRegion+1 : (ri+1)*perRegion]
			var (
				mu    sync.Mutex
				inner sync.WaitGroup
				sem   = make(chan struct{}, 16)
			)
			for _, tok := range toks {
				sem <- struct{}{}
				inner.Add(1)
				go func() {
					defer func() { <-sem; inner.Done() }()
					resp, took := r.vote(t, tok, pollID, opts[ri])
					if resp.Status != http.StatusAccepted {
						t.Errorf("region %s: %d %s", r.name, resp.Status, resp.Raw)
						return
					}
					mu.Lock()
					lat[ri] = append(lat[ri], took)
					mu.Unlock()
				}()
			}
			inner.Wait()
			r.drained(t, 5*time.Minute)
			drainedAt[ri] = time.Since(start)
		}()
	}
	wg.Wait()
	for ri, r := range cl.regions {
		n := len(lat[ri])
		t.Logf("MEASURE serial=%s region=%s voters=%d 202_p50=%s 202_p99=%s applied_per_s=%.0f (drained after %s)",
			serialConsistency(), r.name, n, percentile(lat[ri], 0.5).Round(100*time.Microsecond),
			percentile(lat[ri], 0.99).Round(100*time.Microsecond),
			float64(n)/drainedAt[ri].Seconds(), drainedAt[ri].Round(10*time.Millisecond))
	}
	cl.expectConverged(t, owner, pollID, int64(2*perRegion))
}
