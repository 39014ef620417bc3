//go:build integration

package vote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// unreachable is a loopback port nothing listens on: connections are refused
// at once, as they are when the server is stopped.
const unreachable = "127.0.0.1:1"

// TestRedisDown: with Redis unreachable nothing can tell a duplicate before
// the write, so async votes take the synchronous path: each is recorded
// before it is answered (200), a second vote with another key is refused by
// the LWT (409, never a 202 that later fails), and results come from
// Cassandra.
func TestRedisDown(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Redis.Addr = unreachable
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 40)
	path := "/v1/polls/" + pollID + "/votes"
	for i, tok := range voters {
		r := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", "a")
		r.Must(t, http.StatusOK)
		if i < 10 {
			// A second vote with another key: Redis cannot stop it, the LWT does, before the answer.
			r2 := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[(i+1)%3]}, "Idempotency-Key", "b")
			if r2.Status != http.StatusConflict || r2.Code() != "ALREADY_VOTED" {
				t.Fatalf("second vote with redis down: %d %s, want 409 ALREADY_VOTED", r2.Status, r2.Raw)
			}
		}
	}
	if n := len(rows(t, e.app, pollID)); n != 40 {
		t.Fatalf("%d rows, want 40", n)
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
	pid, _ := id.Parse(pollID)
	o0, _ := id.Parse(opts[0])
	// Corrupt: +7 on option 0 and +7 ballots in shard 3, and a cached live
	// tally that claims 999 ballots.
	for _, opt := range []id.ID{o0, tally.BallotKey} {
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

// TestFailedWriteThroughIsNotAccepted (issue 19, hole 9): a vote that was
// admitted (its accepted marker set), found Kafka down and then failed its
// write-through was answered 503, never accepted. A retry with its key after
// the poll closed must not be told 202 (nothing was queued, so its status
// would read pending for a day): the request is forgotten with the failure.
func TestFailedWriteThroughIsNotAccepted(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Kafka.Brokers = []string{unreachable}
	e := start(t, cfg, false)
	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	path := "/v1/polls/" + pollID + "/votes"

	// The write-through fails for real: the votes table is gone while the
	// vote is cast (recreated afterwards from the server's own DDL).
	cql := e.app.CQL.Session
	var ddl string
	if err := cql.Query(`DESCRIBE TABLE votes`).Scan(nil, nil, nil, &ddl); err != nil {
		t.Fatalf("describe votes: %v", err)
	}
	if err := cql.Query(`DROP TABLE votes`).Exec(); err != nil {
		t.Fatalf("drop votes: %v", err)
	}
	r := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "once")
	if err := cql.Query(ddl).Exec(); err != nil {
		t.Fatalf("recreate votes: %v", err)
	}
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("vote with Kafka down and no votes table: %d %s, want 503", r.Status, r.Raw)
	}

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	time.Sleep(2 * e.cfg.Poll.CacheTTL)
	retry := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "once")
	if retry.Status != http.StatusConflict || retry.Code() != "POLL_NOT_ACTIVE" {
		t.Fatalf("retry after close of a request that was never accepted: %d %s, want 409 POLL_NOT_ACTIVE",
			retry.Status, retry.Raw)
	}
	if n := len(rows(t, e.app, pollID)); n != 0 {
		t.Fatalf("%d rows, want 0", n)
	}
}
