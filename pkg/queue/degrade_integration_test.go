//go:build integration

package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// unreachable is a loopback port nothing listens on: connections are refused
// at once, as they are when the server is stopped.
const unreachable = "127.0.0.1:1"

// TestRedisDown: with Redis unreachable, async votes are still accepted,
// duplicates are caught by the LWT, and results come from Cassandra.
func TestRedisDown(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Redis.Addr = unreachable
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 40)
	path := "/v1/polls/" + pollID + "/votes"
	var requests []string
	for i, tok := range voters {
		r := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "a")
		r.Must(t, http.StatusAccepted)
		if i < 10 {
			// A second vote with another key: Redis cannot stop it, the LWT does.
			r2 := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[(i+1)%3]}, "Idempotency-Key", "b")
			r2.Must(t, http.StatusAccepted)
			requests = append(requests, tok+" "+r2.Str("request_id"))
		}
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := len(rows(t, e.app, pollID)); n != 40 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	failed := 0
	for i := range 10 {
		var tok, rid string
		fmt.Sscan(requests[i], &tok, &rid)
		testenv.Eventually(t, 10*time.Second, func() error {
			r := e.c.Do("GET", path+"/requests/"+rid, tok, nil).Must(t, http.StatusOK)
			switch r.Str("state") {
			case "failed":
				failed++
				return nil
			case "completed":
				return fmt.Errorf("a second vote completed")
			}
			return fmt.Errorf("pending")
		})
	}
	if failed != 10 {
		t.Fatalf("%d of 10 second votes failed", failed)
	}
	expectConverged(t, e, owner, pollID, opts)
	if r := e.c.Do("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with redis down: %d %s", r.Status, r.Raw)
	}
}

// TestKafkaDown: with Kafka unreachable, the vote path writes synchronously
// (200 recorded) and every invariant holds.
func TestKafkaDown(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Kafka.Brokers = []string{unreachable}
	e := start(t, cfg, false)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 30)
	path := "/v1/polls/" + pollID + "/votes"
	for i, tok := range voters {
		r := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "a")
		if r.Status != http.StatusOK || r.Str("status") != "recorded" {
			t.Fatalf("vote %d: %d %s", i, r.Status, r.Raw)
		}
		again := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "a")
		if again.Status != http.StatusOK || again.Str("vote_id") != r.Str("vote_id") {
			t.Fatalf("retry %d: %d %s", i, again.Status, again.Raw)
		}
		if other := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "b"); other.Code() != "ALREADY_VOTED" {
			t.Fatalf("second vote %d: %d %s", i, other.Status, other.Raw)
		}
	}
	if n := len(rows(t, e.app, pollID)); n != 30 {
		t.Fatalf("%d rows", n)
	}
	expectConverged(t, e, owner, pollID, opts)
}

// TestReconciliationRepairsDrift corrupts a counter shard and the cached
// live tally, runs the job, and checks the drift is reported and repaired;
// then closes the poll and checks the final tally is frozen.
func TestReconciliationRepairsDrift(t *testing.T) {
	e := start(t, asyncConfig(t), true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	for i, tok := range tokens(t, e.c, 30) {
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[i%3]}).Must(t, http.StatusAccepted)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if total, _ := e.c.Results(owner, pollID, "final"); total != 30 {
			return fmt.Errorf("final total %d", total)
		}
		return nil
	})
	ctx := context.Background()
	pid, _ := gocql.ParseUUID(pollID)
	o0, _ := gocql.ParseUUID(opts[0])
	// Corrupt: +7 on option 0 and +7 ballots in shard 3, and a cached live
	// tally that claims 999 ballots.
	for _, opt := range []gocql.UUID{o0, tally.BallotKey} {
		err := e.app.CQL.Session.Query(`UPDATE vote_counts SET votes = votes + 7 WHERE poll_id = ? AND shard = 3 AND option_id = ?`,
			pid, opt).Exec()
		if err != nil {
			t.Fatal(err)
		}
	}
	bogus, _ := json.Marshal(map[string]any{"counts": map[string]any{"ballots": 999, "options": map[string]int{opts[0]: 999}},
		"as_of": time.Now()})
	if err := e.app.Redis.Set(ctx, "tally:live:"+pollID, bogus, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if total, _ := e.c.Results(owner, pollID, "live"); total != 999 {
		t.Fatalf("corrupted cache not served (%d); the test proves nothing", total)
	}

	rep, err := e.app.Reconcile(ctx, pid, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CounterDrift.Ballots != -7 || rep.CounterDrift.Options[o0] != -7 || !rep.CacheDrift {
		t.Fatalf("drift not reported: %+v", rep)
	}
	if rep.Repaired.Ballots != -7 {
		t.Fatalf("not repaired: %+v", rep.Repaired)
	}
	expectConverged(t, e, owner, pollID, opts)
	metrics := e.c.Do("GET", "/metrics", "", nil).Must(t, http.StatusOK)
	for _, want := range []string{`tally_reconcile_drift_votes_total{source="counters"} 14`, `tally_reconcile_drift_votes_total{source="redis"}`} {
		if !strings.Contains(string(metrics.Raw), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}

	// Closing the poll enqueues reconciliation, which freezes the tally
	// once the worker group has passed the close's watermark.
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	testenv.Eventually(t, 30*time.Second, func() error {
		var ballots int64
		err := e.app.CQL.Session.Query(`SELECT ballots FROM final_tallies WHERE poll_id = ? LIMIT 1`, pid).Scan(&ballots)
		if err != nil || ballots != 30 {
			return fmt.Errorf("tally not frozen: ballots=%d err=%v", ballots, err)
		}
		return nil
	})
	total, _ := e.c.Results("", pollID, "final")
	if total != 30 {
		t.Fatalf("frozen final %d", total)
	}

	// The audit log holds the story, newest first.
	events, err := e.app.Audit.List(ctx, pid, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range events {
		kinds = append(kinds, ev.Kind)
	}
	got := strings.Join(kinds, ",")
	for _, want := range []string{"tally.frozen", "poll.closed", "tally.drift_repaired", "poll.created"} {
		if !strings.Contains(got, want) {
			t.Fatalf("audit log %q lacks %s", got, want)
		}
	}
	if !strings.HasSuffix(got, "poll.created") || !strings.HasPrefix(got, "tally.frozen") {
		t.Fatalf("audit log not newest first: %q", got)
	}
}
