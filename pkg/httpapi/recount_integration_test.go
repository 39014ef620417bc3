//go:build integration

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// The done-when test of issue 22: a 2,000-voter ranked poll, its ballots
// drawn from a seeded distribution and cast through the async API with the
// worker running, closed and frozen by the worker's finalizer. The frozen
// tally=final result must equal a recount of the `tally export` file by the
// instant-runoff and Schulze code below, written for this test alone: it
// shares nothing with pkg/count.

const recountVoters = 2000

// recountOptions are the options' labels; the distribution below favours
// them in this order, closely enough that the count takes several rounds.
var recountOptions = []string{"Ash", "Birch", "Cedar", "Dogwood", "Elm"}

// drawBallots draws n ranked ballots from a fixed distribution: each voter
// ranks the options by a common appeal plus personal noise, and ranks
// between one and all of them, so short ballots exhaust as their options
// are eliminated. The same seed always gives the same ballots.
func drawBallots(seed uint64, n int, options []string) [][]string {
	rng := rand.New(rand.NewPCG(seed, 22))
	appeal := []float64{1.0, 0.95, 0.9, 0.7, 0.5}
	lengths := []int{1, 1, 1, 2, 2, 3, 3, 3, 4, 5} // P(len) = .3 .2 .3 .1 .1
	ballots := make([][]string, n)
	for v := range ballots {
		score := make([]float64, len(options))
		order := make([]int, len(options))
		for i := range options {
			score[i], order[i] = appeal[i]+rng.NormFloat64()*0.6, i
		}
		sort.Slice(order, func(a, b int) bool { return score[order[a]] > score[order[b]] })
		k := lengths[rng.IntN(len(lengths))]
		for _, i := range order[:k] {
			ballots[v] = append(ballots[v], options[i])
		}
	}
	return ballots
}

// castBallots votes each ballot (option ids) as its own fresh voter through
// the async API and waits until every 202 has completed.
func castBallots(t *testing.T, e *env, secret, pollID string, ballots [][]string) {
	t.Helper()
	bodies := make([]map[string]any, len(ballots))
	for i, b := range ballots {
		bodies[i] = map[string]any{"option_ids": b}
	}
	castBodies(t, e, secret, pollID, bodies)
}

// castBodies votes each body as its own fresh voter through the async API,
// waits until every 202 has completed, and returns the voters' tokens.
func castBodies(t *testing.T, e *env, secret, pollID string, ballots []map[string]any) []string {
	t.Helper()
	// Voters carry tokens signed with the server's secret, as a login would
	// issue them: 2,000 registrations would only slow the test down.
	tokens := auth.NewTokens(secret, time.Hour, time.Now)
	type cast struct{ token, request string }
	casts := make([]cast, len(ballots))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tok, err := tokens.Issue(auth.Principal{UserID: id.New(), AccountCreated: time.Now().Add(-30 * 24 * time.Hour)})
				if err != nil {
					t.Error(err)
					return
				}
				for {
					r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok.AccessToken, ballots[i],
						"Idempotency-Key", fmt.Sprintf("recount-%d", i))
					if r.Status == http.StatusServiceUnavailable {
						time.Sleep(50 * time.Millisecond) // shed: retried with the same key, as a client would
						continue
					}
					if r.Status != http.StatusAccepted {
						t.Errorf("vote %d: %d %s", i, r.Status, r.Raw)
						return
					}
					casts[i] = cast{tok.AccessToken, r.Str("request_id")}
					break
				}
			}
		}()
	}
	for i := range ballots {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	testenv.Eventually(t, 90*time.Second, func() error {
		if n := len(e.voteRows(t, pollID)); n != len(ballots) {
			return fmt.Errorf("%d of %d vote rows", n, len(ballots))
		}
		return nil
	})
	for i, c := range casts {
		if i%97 != 0 {
			continue // a sample: the rows above are the whole truth
		}
		r := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/requests/"+c.request, c.token, nil).Must(t, http.StatusOK)
		if r.Str("state") != "completed" {
			t.Fatalf("request %d: %s", i, r.Raw)
		}
	}
	voters := make([]string, len(casts))
	for i, c := range casts {
		voters[i] = c.token
	}
	return voters
}

// assertFirstPreferences: live results of a ranked or Schulze poll show
// each option's first preferences (the counters the worker wrote), and a
// reconciliation, which counts the rows, finds them right.
func assertFirstPreferences(t *testing.T, e *env, pollID string, firsts map[string]int64) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		total, votes := e.c.Results("", pollID, "live")
		if total != recountVoters || !reflect.DeepEqual(votes, firsts) {
			return fmt.Errorf("live: %d ballots, %v; want first preferences %v", total, votes, firsts)
		}
		return nil
	})
	ctx := context.Background()
	p, err := e.app.Polls.Get(ctx, mustUUID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{})
	if err != nil || !rep.CounterDrift.IsZero() || rep.Rows.Ballots != recountVoters {
		t.Fatalf("reconcile: drift %+v, %d rows, %v", rep.CounterDrift, rep.Rows.Ballots, err)
	}
	for o, n := range rep.Rows.Options {
		if firsts[o.String()] != n {
			t.Fatalf("the rows' count %v is not the first preferences %v", rep.Rows.Options, firsts)
		}
	}
}

// closeAndFreeze closes the poll and waits until the worker's finalizer has
// frozen its tally, then returns tally=final.
func closeAndFreeze(t *testing.T, e *env, owner, pollID string, ballots int64) map[string]any {
	t.Helper()
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if n := testenv.FrozenBallots(t, e.app, pollID, 60*time.Second); n != ballots {
		t.Fatalf("frozen tally: %d ballots, want %d", n, ballots)
	}
	return e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", "", nil).Must(t, http.StatusOK).Body
}

// exportedBallot is a line of the JSON Lines export, read by the test's own
// type.
type exportedBallot struct {
	PollID    string   `json:"poll_id"`
	Voter     string   `json:"voter"`
	OptionIDs []string `json:"option_ids"`
	Scores    []int    `json:"scores"`
}

// exportFile runs the export `tally export --poll ID --format jsonl --out
// FILE` runs, and reads the file back.
func exportFile(t *testing.T, e *env, pollID string) []exportedBallot {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ballots.jsonl")
	pid, _ := id.Parse(pollID)
	rep, err := e.app.Export(context.Background(), export.Options{Poll: pid, Format: export.JSONL, Out: out,
		PseudonymKey: []byte("recount-test-pseudonym-key")}, export.NewMetrics(nil), nil)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []exportedBallot
	voters := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var b exportedBallot
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if b.PollID != pollID || voters[b.Voter] {
			t.Fatalf("export line of another poll or a repeated voter: %s", sc.Text())
		}
		voters[b.Voter] = true
		rows = append(rows, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if int64(len(rows)) != rep.Rows {
		t.Fatalf("export reported %d rows, the file has %d", rep.Rows, len(rows))
	}
	return rows
}

// irvRound is a round as the recount sees it.
type irvRound struct {
	Counts     map[string]int
	Exhausted  int
	Eliminated string
}

// recountIRV: every ballot goes to its highest-ranked option still in the
// count; an option with more than half of the ballots still in the count
// (or the last option left) wins, otherwise the option with the fewest is
// eliminated and the next round begins. A tie for last place is settled
// by backward countback; one countback cannot settle fails the test (the
// draw by lot is not re-implemented here; another seed avoids it).
func recountIRV(t *testing.T, options []string, ballots [][]string) ([]irvRound, string) {
	t.Helper()
	in := map[string]bool{}
	for _, o := range options {
		in[o] = true
	}
	var rounds []irvRound
	for {
		r := irvRound{Counts: map[string]int{}}
		for o := range in {
			r.Counts[o] = 0
		}
		live := 0
		for _, b := range ballots {
			top := ""
			for _, o := range b {
				if in[o] {
					top = o
					break
				}
			}
			if top == "" {
				r.Exhausted++
				continue
			}
			r.Counts[top]++
			live++
		}
		var best, worst []string
		for o, n := range r.Counts {
			if len(best) == 0 || n > r.Counts[best[0]] {
				best = []string{o}
			} else if n == r.Counts[best[0]] {
				best = append(best, o)
			}
			if len(worst) == 0 || n < r.Counts[worst[0]] {
				worst = []string{o}
			} else if n == r.Counts[worst[0]] {
				worst = append(worst, o)
			}
		}
		if len(in) == 1 || 2*r.Counts[best[0]] > live {
			rounds = append(rounds, r)
			return rounds, best[0]
		}
		for back := len(rounds) - 1; len(worst) > 1 && back >= 0; back-- {
			least := worst[:0:0]
			for _, o := range worst {
				if len(least) == 0 || rounds[back].Counts[o] < rounds[back].Counts[least[0]] {
					least = []string{o}
				} else if rounds[back].Counts[o] == rounds[back].Counts[least[0]] {
					least = append(least, o)
				}
			}
			worst = least
		}
		if len(worst) > 1 {
			t.Fatalf("round %d: a tie for last place (%v) only a lot settles; choose another seed", len(rounds)+1, worst)
		}
		r.Eliminated = worst[0]
		delete(in, worst[0])
		rounds = append(rounds, r)
	}
}

// recountSchulze: d[x][y] counts the ballots that rank x above y (an option
// ranked is above every option left off); p is the widest-path closure of
// the d[x][y] > d[y][x] links; the winner is the option whose strongest
// path to every other is at least as strong as the way back. Several such
// options fail the test (their lot is not re-implemented here).
func recountSchulze(t *testing.T, options []string, ballots [][]string) (d, p [][]int, winner string) {
	t.Helper()
	n := len(options)
	at := map[string]int{}
	for i, o := range options {
		at[o] = i
	}
	d, p = make([][]int, n), make([][]int, n)
	for i := range n {
		d[i], p[i] = make([]int, n), make([]int, n)
	}
	for _, b := range ballots {
		rank := make([]int, n)
		for i := range rank {
			rank[i] = len(b) // unranked: below every ranked option
		}
		for k, o := range b {
			rank[at[o]] = k
		}
		for x := range n {
			for y := range n {
				if rank[x] < rank[y] {
					d[x][y]++
				}
			}
		}
	}
	for x := range n {
		for y := range n {
			if x != y && d[x][y] > d[y][x] {
				p[x][y] = d[x][y]
			}
		}
	}
	for k := range n {
		for x := range n {
			for y := range n {
				if x != y && x != k && y != k {
					p[x][y] = max(p[x][y], min(p[x][k], p[k][y]))
				}
			}
		}
	}
	var winners []string
	for x := range n {
		unbeaten := true
		for y := range n {
			unbeaten = unbeaten && p[y][x] <= p[x][y]
		}
		if unbeaten {
			winners = append(winners, options[x])
		}
	}
	if len(winners) != 1 {
		t.Fatalf("Schulze winners %v: only a lot settles; choose another seed", winners)
	}
	return d, p, winners[0]
}

// finalCount is tally=final's count, decoded by the test's own types.
type finalCount struct {
	Method        string `json:"method"`
	Ballots       int    `json:"ballots"`
	Winner        string `json:"winner"`
	InstantRunoff *struct {
		Rounds []struct {
			Counts []struct {
				OptionID string `json:"option_id"`
				Votes    int    `json:"votes"`
			} `json:"counts"`
			Exhausted  int    `json:"exhausted"`
			Eliminated string `json:"eliminated"`
			TieBreak   string `json:"tie_break"`
		} `json:"rounds"`
		Winner string `json:"winner"`
	} `json:"instant_runoff"`
	Schulze *struct {
		Options []string `json:"options"`
		D       [][]int  `json:"d"`
		P       [][]int  `json:"p"`
		Winner  string   `json:"winner"`
	} `json:"schulze"`
}

func decodeCount(t *testing.T, final map[string]any) finalCount {
	t.Helper()
	raw, _ := json.Marshal(final["count"])
	var c finalCount
	if err := json.Unmarshal(raw, &c); err != nil || c.Method == "" {
		t.Fatalf("tally=final carries no count: %v %s", err, raw)
	}
	return c
}

func TestFrozenRankedResultEqualsRecountOfExport(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)

	for _, method := range []string{"ranked", "schulze"} {
		t.Run(method, func(t *testing.T) {
			owner, _ := e.c.Account()
			pollID, optIDs := e.c.Poll(owner, map[string]any{"method": method}, recountOptions...)
			byLabel := map[string]string{}
			for i, l := range recountOptions {
				byLabel[l] = optIDs[i]
			}
			drawn := drawBallots(2026, recountVoters, recountOptions)
			ballots := make([][]string, len(drawn))
			lengths := map[int]int{}
			for i, b := range drawn {
				for _, l := range b {
					ballots[i] = append(ballots[i], byLabel[l])
				}
				lengths[len(b)]++
			}
			t.Logf("ballot lengths: %v", lengths)
			castBallots(t, e, cfg.JWTSecret, pollID, ballots)
			firsts := map[string]int64{}
			for _, b := range ballots {
				firsts[b[0]]++
			}
			assertFirstPreferences(t, e, pollID, firsts)

			final := closeAndFreeze(t, e, owner, pollID, recountVoters)
			for _, o := range final["options"].([]any) {
				o := o.(map[string]any)
				if int64(o["votes"].(float64)) != firsts[o["option_id"].(string)] {
					t.Fatalf("tally=final options are not first preferences: %v, want %v", final["options"], firsts)
				}
			}
			got := decodeCount(t, final)
			if final["total_votes"] != float64(recountVoters) || got.Ballots != recountVoters || got.Method != method {
				t.Fatalf("tally=final: %v ballots, count %+v", final["total_votes"], got)
			}

			rows := exportFile(t, e, pollID)
			if len(rows) != recountVoters {
				t.Fatalf("export has %d ballots, want %d", len(rows), recountVoters)
			}
			exported := make([][]string, len(rows))
			for i, r := range rows {
				exported[i] = r.OptionIDs
			}
			// The export holds exactly the ballots cast, in each voter's order.
			key := func(bs [][]string) []string {
				out := make([]string, len(bs))
				for i, b := range bs {
					out[i] = fmt.Sprint(b)
				}
				slices.Sort(out)
				return out
			}
			if !slices.Equal(key(exported), key(ballots)) {
				t.Fatal("the exported ballots are not the ballots cast")
			}

			switch method {
			case "ranked":
				rounds, winner := recountIRV(t, optIDs, exported)
				if got.InstantRunoff == nil || got.Winner != winner || got.InstantRunoff.Winner != winner {
					t.Fatalf("winner: frozen %q, recount %q", got.Winner, winner)
				}
				if len(got.InstantRunoff.Rounds) != len(rounds) {
					t.Fatalf("%d rounds frozen, %d recounted", len(got.InstantRunoff.Rounds), len(rounds))
				}
				exhausted := 0
				for i, fr := range got.InstantRunoff.Rounds {
					counts := map[string]int{}
					for _, c := range fr.Counts {
						counts[c.OptionID] = c.Votes
					}
					want := rounds[i]
					if !reflect.DeepEqual(counts, want.Counts) || fr.Exhausted != want.Exhausted || fr.Eliminated != want.Eliminated {
						t.Fatalf("round %d: frozen %v exhausted %d eliminated %q; recount %v exhausted %d eliminated %q",
							i+1, counts, fr.Exhausted, fr.Eliminated, want.Counts, want.Exhausted, want.Eliminated)
					}
					exhausted = fr.Exhausted
				}
				if len(rounds) < 3 || exhausted == 0 {
					t.Fatalf("the distribution should take several rounds and exhaust ballots: %d rounds, %d exhausted", len(rounds), exhausted)
				}
				t.Logf("IRV: %d rounds, %d ballots exhausted in the last, winner %s", len(rounds), exhausted, winner)
			case "schulze":
				d, p, winner := recountSchulze(t, optIDs, exported)
				s := got.Schulze
				if s == nil || got.Winner != winner || s.Winner != winner || !slices.Equal(s.Options, optIDs) {
					t.Fatalf("winner: frozen %q, recount %q", got.Winner, winner)
				}
				if !reflect.DeepEqual(s.D, d) || !reflect.DeepEqual(s.P, p) {
					t.Fatalf("pairwise: frozen d %v p %v; recount d %v p %v", s.D, s.P, d, p)
				}
				t.Logf("Schulze: winner %s, d %v", winner, d)
			}
		})
	}
}
