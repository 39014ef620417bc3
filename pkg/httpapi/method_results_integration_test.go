//go:build integration

package httpapi_test

import (
	"context"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/tally-vote/tally/pkg/tally"
)

// TestRankedFinalResults: ranked ballots cast through the API, the poll
// closed, and tally=final carries the instant-runoff count from the rows.
// The ballots are the Tennessee capital example at 15 voters (6 M>N>C>K,
// 4 N>C>K>M, 2 C>K>N>M, 3 K>C>N>M): instant-runoff eliminates C then N and
// elects K 9–6, while N beats every other option head to head and so wins
// under Schulze.
func TestRankedFinalResults(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, winner string }{{"ranked", "K"}, {"schulze", "N"}} {
		t.Run(tc.method, func(t *testing.T) {
			owner, _ := e.c.Account()
			pollID, ids := e.c.Poll(owner, map[string]any{"method": tc.method}, "M", "N", "C", "K")
			byName := map[rune]string{'M': ids[0], 'N': ids[1], 'C': ids[2], 'K': ids[3]}
			var ballots [][]string
			for _, g := range []struct {
				n     int
				order string
			}{{6, "MNCK"}, {4, "NCKM"}, {2, "CKNM"}, {3, "KCNM"}} {
				for range g.n {
					var b []string
					for _, c := range g.order {
						b = append(b, byName[c])
					}
					ballots = append(ballots, b)
				}
			}
			var wg sync.WaitGroup
			for _, b := range ballots {
				voter, _ := e.c.Account()
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_ids": b}).Must(t, http.StatusOK)
				}()
			}
			wg.Wait()
			live := e.c.Do("GET", "/v1/polls/"+pollID+"/results", "", nil).Must(t, http.StatusOK)
			if live.Body["method"] != tc.method || live.Body["count"] != nil {
				t.Fatalf("live: %s", live.Raw)
			}
			e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
			r := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", "", nil).Must(t, http.StatusOK)
			c, _ := r.Body["count"].(map[string]any)
			if c == nil || c["winner"] != byName[rune(tc.winner[0])] || c["ballots"] != float64(15) || r.Body["total_votes"] != float64(15) {
				t.Fatalf("final: %s", r.Raw)
			}
			// Frozen by the final reconciliation: its report carries the same
			// count, and tally=final now served from the frozen totals still
			// carries it, unchanged.
			ctx := context.Background()
			p, err := e.app.Polls.Get(ctx, mustUUID(t, pollID))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true})
			if err != nil || !rep.Final || rep.Count == nil || rep.Count.Winner != c["winner"] {
				t.Fatalf("final reconcile: %+v, %v", rep.Count, err)
			}
			again := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", "", nil).Must(t, http.StatusOK)
			if !reflect.DeepEqual(again.Body["count"], r.Body["count"]) {
				t.Fatalf("frozen count %v, before the freeze %v", again.Body["count"], r.Body["count"])
			}
			if tc.method == "ranked" {
				rounds := c["instant_runoff"].(map[string]any)["rounds"].([]any)
				if len(rounds) != 3 || rounds[0].(map[string]any)["eliminated"] != byName['C'] || rounds[1].(map[string]any)["eliminated"] != byName['N'] {
					t.Fatalf("rounds: %s", r.Raw)
				}
			}
		})
	}
}
