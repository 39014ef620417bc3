//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestScoreBallots: a score poll (0–5 per option) on the async stack with
// the worker running. Bad score ballots are refused with 400
// VALIDATION_FAILED naming scores (or 422 for an option not in the poll);
// 300 seeded ballots, each scoring a subset of the options, are stored with
// their scores in votes; live results show each option's number of scores
// and running mean; tally=final of the frozen poll carries the score count
// (count, total, mean, distribution per option, winner) and the export
// carries the scores, which the test's own arithmetic recounts.
func TestScoreBallots(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"method": "score"}, "Tea", "Coffee", "Cocoa", "Mate")
	if s, _ := e.c.Do("GET", "/v1/polls/"+pollID, "", nil).Body["settings"].(map[string]any); s["method"] != "score" {
		t.Fatalf("settings: %v", s)
	}
	votes := "/v1/polls/" + pollID + "/votes"

	// Refusals, each before anything is stored.
	voter, _ := e.c.Account()
	entry := func(o string, s any) map[string]any { return map[string]any{"option_id": o, "score": s} }
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"score above 5", map[string]any{"scores": []any{entry(opts[0], 6)}}, 400, "VALIDATION_FAILED"},
		{"negative score", map[string]any{"scores": []any{entry(opts[0], -1)}}, 400, "VALIDATION_FAILED"},
		{"fractional score", map[string]any{"scores": []any{entry(opts[0], 2.5)}}, 400, "VALIDATION_FAILED"},
		{"score as a string", map[string]any{"scores": []any{entry(opts[0], "3")}}, 400, "VALIDATION_FAILED"},
		{"no score", map[string]any{"scores": []any{map[string]any{"option_id": opts[0]}}}, 400, "VALIDATION_FAILED"},
		{"option scored twice", map[string]any{"scores": []any{entry(opts[0], 1), entry(opts[0], 2)}}, 400, "VALIDATION_FAILED"},
		{"empty scores", map[string]any{"scores": []any{}}, 400, "VALIDATION_FAILED"},
		{"scores and option_ids", map[string]any{"scores": []any{entry(opts[0], 1)}, "option_ids": []string{opts[0]}}, 400, "VALIDATION_FAILED"},
		{"option_ids on a score poll", map[string]any{"option_ids": []string{opts[0]}}, 400, "VALIDATION_FAILED"},
		{"unknown option", map[string]any{"scores": []any{entry(id.New().String(), 3)}}, 422, "INVALID_OPTION"},
	} {
		r := e.c.Do("POST", votes, voter, tc.body)
		if r.Status != tc.status || r.Code() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Raw, tc.status, tc.code)
			continue
		}
		if f, _ := r.Body["error"].(map[string]any)["field"].(string); tc.status == 400 && !strings.HasPrefix(f, "scores") {
			t.Errorf("%s: the refusal names %q, want scores (or scores.score): %s", tc.name, f, r.Raw)
		}
	}
	// Scores on a poll of another method are refused too.
	plain, plainOpts := e.c.Poll(owner, nil)
	if r := e.c.Do("POST", "/v1/polls/"+plain+"/votes", voter, map[string]any{"scores": []any{entry(plainOpts[0], 3)}}); r.Status != 400 || r.Code() != "VALIDATION_FAILED" {
		t.Errorf("scores on a plurality poll: %d %s", r.Status, r.Raw)
	}
	if t.Failed() {
		t.FailNow()
	}
	if n := len(e.voteRows(t, pollID)); n != 0 {
		t.Fatalf("%d rows stored by refused ballots", n)
	}

	// 300 seeded ballots, each scoring between one and four options.
	const n = 300
	rng := rand.New(rand.NewPCG(20, 2026))
	bias := []int{4, 3, 2, 1}
	bodies := make([]map[string]any, n)
	type scoreTally struct {
		count, total int
		dist         [6]int
	}
	want := map[string]*scoreTally{}
	for _, o := range opts {
		want[o] = &scoreTally{}
	}
	for i := range bodies {
		var entries []any
		for _, k := range rng.Perm(len(opts))[:1+rng.IntN(len(opts))] {
			s := min(5, max(0, bias[k]+rng.IntN(3)-1))
			entries = append(entries, entry(opts[k], s))
			w := want[opts[k]]
			w.count, w.total = w.count+1, w.total+s
			w.dist[s]++
		}
		bodies[i] = map[string]any{"scores": entries}
	}
	tokens := castBodies(t, e, cfg.JWTSecret, pollID, bodies)
	// The voter reads back its own ballot with its scores.
	me := e.c.Do("GET", votes+"/me", tokens[0], nil).Must(t, http.StatusOK)
	var gotScores []any
	for i, o := range me.Body["option_ids"].([]any) {
		if o != bodies[0]["scores"].([]any)[i].(map[string]any)["option_id"] {
			t.Fatalf("my vote %s, cast %v", me.Raw, bodies[0])
		}
		gotScores = append(gotScores, float64(bodies[0]["scores"].([]any)[i].(map[string]any)["score"].(int)))
	}
	if !reflect.DeepEqual(me.Body["scores"], gotScores) {
		t.Fatalf("my vote %s, cast %v", me.Raw, bodies[0])
	}

	// The rows hold the scores beside the options, in the ballot's order.
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id, option_ids, scores FROM votes`).Iter()
	var (
		p      id.ID
		os     []id.ID
		sc     []int
		stored = map[string]*scoreTally{}
	)
	for iter.Scan(&p, &os, &sc) {
		if p == pid {
			if len(sc) != len(os) {
				t.Fatalf("row with %d options and %d scores", len(os), len(sc))
			}
			for i, o := range os {
				if stored[o.String()] == nil {
					stored[o.String()] = &scoreTally{}
				}
				s := stored[o.String()]
				s.count, s.total = s.count+1, s.total+sc[i]
				s.dist[sc[i]]++
			}
		}
		os, sc = nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, want) {
		t.Fatalf("stored scores differ from the ballots cast")
	}

	// Live: number of scores and the running mean per option.
	mean := func(w *scoreTally) float64 { return math.Round(float64(w.total)*100/float64(w.count)) / 100 }
	testenv.Eventually(t, 20*time.Second, func() error {
		r := e.c.Do("GET", "/v1/polls/"+pollID+"/results", "", nil).Must(t, http.StatusOK)
		if r.Body["total_votes"] != float64(n) {
			return fmt.Errorf("live: %s", r.Raw)
		}
		for _, o := range r.Body["options"].([]any) {
			o := o.(map[string]any)
			w := want[o["option_id"].(string)]
			if o["votes"] != float64(w.count) || o["mean"] != mean(w) {
				return fmt.Errorf("live %v, want %d scores, mean %v", o, w.count, mean(w))
			}
		}
		return nil
	})

	// A reconciliation, which counts the rows, finds the counters right.
	ctx := context.Background()
	pp, err := e.app.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := e.app.Tally.Reconcile(ctx, pp, tally.ReconcileOptions{}); err != nil || !rep.CounterDrift.IsZero() || rep.Rows.Ballots != n {
		t.Fatalf("reconcile: drift %+v, %d rows, %v", rep.CounterDrift, rep.Rows.Ballots, err)
	}

	// Final, frozen: the score count from the rows.
	final := closeAndFreeze(t, e, owner, pollID, n)
	c, _ := final["count"].(map[string]any)
	if c == nil || c["method"] != "score" || c["ballots"] != float64(n) {
		t.Fatalf("tally=final: %v", final)
	}
	best, bestTotal := "", -1
	for _, o := range c["score"].(map[string]any)["options"].([]any) {
		o := o.(map[string]any)
		w := want[o["option_id"].(string)]
		var dist [6]int
		for i, d := range o["distribution"].([]any) {
			dist[i] = int(d.(float64))
		}
		if o["count"] != float64(w.count) || o["total"] != float64(w.total) || dist != w.dist ||
			math.Abs(o["mean"].(float64)-float64(w.total)/float64(w.count)) > 1e-9 {
			t.Fatalf("final %v, want %+v", o, *w)
		}
		if w.total > bestTotal {
			best, bestTotal = o["option_id"].(string), w.total
		}
	}
	if c["winner"] != best {
		t.Fatalf("winner %v, want %s (highest total; the seed gives no tie)", c["winner"], best)
	}
	for _, o := range final["options"].([]any) {
		o := o.(map[string]any)
		if w := want[o["option_id"].(string)]; o["votes"] != float64(w.count) || o["mean"] != mean(w) {
			t.Fatalf("final options %v, want %d scores, mean %v", o, w.count, mean(w))
		}
	}

	// The export carries each ballot's scores.
	exported := map[string]*scoreTally{}
	for _, r := range exportFile(t, e, pollID) {
		if len(r.Scores) != len(r.OptionIDs) {
			t.Fatalf("exported ballot %+v: scores do not match its options", r)
		}
		for i, o := range r.OptionIDs {
			if exported[o] == nil {
				exported[o] = &scoreTally{}
			}
			x := exported[o]
			x.count, x.total = x.count+1, x.total+r.Scores[i]
			x.dist[r.Scores[i]]++
		}
	}
	if !reflect.DeepEqual(exported, want) {
		t.Fatal("the export's scores differ from the ballots cast")
	}
}
