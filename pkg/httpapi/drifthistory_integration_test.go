//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/livelag"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// A certified tally carries the poll's drift history: the counter drift
// reconciliations measured and repaired over its life, and how long its
// votes took to reach the live tally, merged from the worker's per-poll
// histograms. The drift here is real counter drift written into a shard,
// as a double-counted replay leaves it.
func TestCertifiedTallyCarriesTheDriftHistory(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"bot_policy": "off"}, "yes", "no")
	const n = 20
	for i := range n {
		voter, _ := e.c.Account()
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[i%2]},
			"Idempotency-Key", "k"+strconv.Itoa(i)).Must(t, http.StatusAccepted)
	}
	pid, _ := id.Parse(pollID)
	store := cassandra.NewTallyStore(e.app.CQL)
	eventually(t, 30*time.Second, "every vote applied and its lag flushed", func() bool {
		hs, err := store.LoadLag(ctx, pid)
		return err == nil && livelag.Merge(hs).Votes == n
	})

	// Three ballots counted twice on the first option, then a
	// reconciliation measures and repairs them.
	yes, _ := id.Parse(opts[0])
	if err := store.AdjustShard(ctx, pid, 1, tally.Counts{Ballots: 3, Options: map[id.ID]int64{yes: 3}}); err != nil {
		t.Fatal(err)
	}
	p, err := e.app.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{})
	if err != nil || rep.CounterDrift.Ballots != -3 || rep.Repaired.Ballots != -3 {
		t.Fatalf("reconcile: %+v, %v", rep, err)
	}

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	var res struct {
		TallyState  string `json:"tally_state"`
		Certificate *struct {
			Ballots      int64               `json:"ballots"`
			DriftHistory *tally.DriftHistory `json:"drift_history"`
		} `json:"certificate"`
	}
	eventually(t, 60*time.Second, "the close's reconciliation to certify the tally", func() bool {
		r := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil)
		return r.Status == http.StatusOK && json.Unmarshal(r.Raw, &res) == nil && res.TallyState == "certified"
	})
	h := res.Certificate.DriftHistory
	if res.Certificate.Ballots != n || h == nil {
		t.Fatalf("certificate %+v", res.Certificate)
	}
	if h.Reconciliations != 1 || h.MaxCounterDrift != 3 || h.Repairs != 1 {
		t.Errorf("drift history %+v, want one reconciliation that measured and repaired a drift of 3", h)
	}
	if h.LiveLag.Votes != n || h.LiveLag.MaxMs <= 0 || h.LiveLag.P99Ms <= 0 || h.LiveLag.P99Ms > h.LiveLag.MaxMs {
		t.Errorf("live lag %+v, want %d votes with a positive max and p99 ≤ max", h.LiveLag, n)
	}
}
