//go:build integration

package vote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// dlqDepth counts the messages on the test's dead-letter topic.
func dlqDepth(t *testing.T, e *env) int64 {
	t.Helper()
	offs, err := kafkax.GroupOffsets(context.Background(), e.cfg.Kafka, e.cfg.Kafka.DLQTopic, "nobody")
	if err != nil {
		t.Fatalf("dlq offsets: %v", err)
	}
	var n int64
	for _, o := range offs {
		n += o.End - o.Committed
	}
	return n
}

// settle waits until every accepted request of the voters has left
// pending, and returns each request's final state.
func settle(t *testing.T, e *env, pollID string, reqs map[string]string, within time.Duration) map[string]testenv.Response {
	t.Helper()
	out := map[string]testenv.Response{}
	for tok, rid := range reqs {
		testenv.Eventually(t, within, func() error {
			r := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/requests/"+rid, tok, nil)
			if r.Status != http.StatusOK {
				return fmt.Errorf("request %s: %d %s", rid, r.Status, r.Raw) // e.g. the driver reconnecting
			}
			if r.Str("state") == "pending" {
				return fmt.Errorf("request %s pending", rid)
			}
			out[tok] = r
			return nil
		})
	}
	return out
}

// TestCassandraHangNoVoteLost freezes the real Cassandra (SIGSTOP) for
// longer than the worker's old retry budget while votes keep arriving. The
// API keeps answering 202 from its last view of the poll, the worker holds
// its batch instead of dead-lettering it, and after SIGCONT every accepted
// vote is recorded and counted, nothing is in the DLQ, and nobody is
// locked out.
func TestCassandraHangNoVoteLost(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Worker.MaxBackoff = 300 * time.Millisecond
	cfg.Cassandra.Timeout = time.Second
	e := start(t, cfg, true)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	voters := tokens(t, e.c, 41)
	path := "/v1/polls/" + pollID + "/votes"
	// The first vote warms the API's view of the poll and freezes options.
	first := e.c.Do("POST", path, voters[0], map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
	reqs := map[string]string{voters[0]: first.Str("request_id")}
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(rows(t, e.app, pollID)) != 1 {
			return fmt.Errorf("first vote not drained")
		}
		return nil
	})

	resume := testenv.Pause(t, "cassandra")
	hung := time.Now()
	for i, tok := range voters[1:] {
		r := e.c.Do("POST", path, tok, map[string]any{"option_id": opts[i%3]}, "Idempotency-Key", fmt.Sprintf("hang-%d", i))
		if r.Status != http.StatusAccepted {
			resume()
			t.Fatalf("vote %d during the hang: %d %s", i, r.Status, r.Raw)
		}
		reqs[tok] = r.Str("request_id")
		time.Sleep(200 * time.Millisecond)
	}
	// Hold it well past the old budget (5 attempts x 500 ms here).
	time.Sleep(time.Until(hung.Add(12 * time.Second)))
	resume()
	t.Logf("Cassandra was frozen for %s with %d votes accepted meanwhile", time.Since(hung).Round(time.Second), len(voters)-1)

	states := settle(t, e, pollID, reqs, 60*time.Second)
	for tok, r := range states {
		if r.Str("state") != "completed" {
			t.Fatalf("voter %s…: request %s, want completed: %s", tok[:12], r.Str("state"), r.Raw)
		}
	}
	if n := len(rows(t, e.app, pollID)); n != len(voters) {
		t.Fatalf("%d rows, want %d: accepted votes lost", n, len(voters))
	}
	if d := dlqDepth(t, e); d != 0 {
		t.Fatalf("%d votes dead-lettered during a transient outage", d)
	}
	for _, tok := range voters {
		testenv.Eventually(t, 10*time.Second, func() error { // the driver reconnects after the pause
			if r := e.c.Do("GET", path+"/me", tok, nil); r.Status != http.StatusOK || r.Body["has_voted"] != true {
				return fmt.Errorf("an accepted voter has no vote: %d %s", r.Status, r.Raw)
			}
			return nil
		})
	}
	expectConverged(t, e, owner, pollID, opts)
}

// TestCloseNeverUndoneByConcurrentEdit races a close against a description
// edit on many polls: every close answered 200 must hold.
func TestCloseNeverUndoneByConcurrentEdit(t *testing.T) {
	e := start(t, testenv.Config(t), false)
	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	const n = 40
	polls := make([]string, n)
	opts := make([][]string, n)
	for i := range polls {
		polls[i], opts[i] = e.c.Poll(owner, nil)
	}
	var wg sync.WaitGroup
	closed := make([]bool, n)
	for i, id := range polls {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := e.c.Do("PATCH", "/v1/polls/"+id, owner, map[string]any{"status": "closed"})
			closed[i] = r.Status == http.StatusOK
		}()
		go func() {
			defer wg.Done()
			e.c.Do("PATCH", "/v1/polls/"+id, owner, map[string]any{"description": fmt.Sprintf("edit %d", i)})
		}()
	}
	wg.Wait()
	time.Sleep(2 * e.cfg.Poll.CacheTTL)
	for i, id := range polls {
		if !closed[i] {
			t.Fatalf("close of poll %d was not answered 200", i)
		}
		if st := e.c.Do("GET", "/v1/polls/"+id, owner, nil).Must(t, http.StatusOK).Str("status"); st != "closed" {
			t.Fatalf("poll %d reopened by a concurrent edit: status %s", i, st)
		}
		if r := e.c.Do("POST", "/v1/polls/"+id+"/votes", voter, map[string]any{"option_id": opts[i][0]}); r.Status != http.StatusConflict {
			t.Fatalf("closed poll %d took a vote: %d %s", i, r.Status, r.Raw)
		}
	}
}

// TestOptionsFrozenOnceAVoteIsAccepted accepts a vote (202, still queued)
// and then tries to replace the options: refused, and the vote counts.
func TestOptionsFrozenOnceAVoteIsAccepted(t *testing.T) {
	e := start(t, asyncConfig(t), false) // no worker yet: the vote stays queued
	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}).Must(t, http.StatusAccepted)
	r := e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"options": []map[string]any{{"text": "X"}, {"text": "Y"}}})
	if r.Status != http.StatusConflict || r.Code() != "OPTIONS_FROZEN" {
		t.Fatalf("options replaced under a queued vote: %d %s", r.Status, r.Raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.app.RunWorker(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 20*time.Second, func() error {
		total, votes := e.c.Results(owner, pollID, "final")
		if total != 1 || votes[opts[1]] != 1 {
			return fmt.Errorf("final total %d, option %d", total, votes[opts[1]])
		}
		return nil
	})
}

// TestNoAcceptanceOnAnUnconfirmedOptionsFreeze breaks the options freeze
// of a poll's first vote (its column dropped under the running API, so the
// LWT fails while the poll view stays warm) and then lets the owner replace
// the options. A vote answered 2xx must keep its options: either the vote
// is refused while the freeze cannot be confirmed, or the replacement is.
// Before the fix the vote got 202 with the freeze "deferred to the worker",
// the PATCH found neither the frozen flag nor an index row and replaced the
// options, and the worker dead-lettered the accepted vote INVALID_OPTION.
func TestNoAcceptanceOnAnUnconfirmedOptionsFreeze(t *testing.T) {
	cfg := asyncConfig(t)
	cfg.Poll.CacheTTL = time.Minute // the view stays warm across the schema change
	e := start(t, cfg, false)       // no worker yet: the vote stays queued
	owner, _ := e.c.Account()
	voter, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	path := "/v1/polls/" + pollID + "/votes"
	// Warm the view without freezing: a ballot for an option the poll lacks
	// is refused after the poll is read.
	if r := e.c.Do("POST", path, voter, map[string]any{"option_id": id.New().String()}); r.Status/100 != 4 {
		t.Fatalf("vote for an unknown option: %d %s", r.Status, r.Raw)
	}
	cql := e.app.CQL.Session
	if err := cql.Query(`ALTER TABLE polls DROP options_frozen`).Exec(); err != nil {
		t.Fatal(err)
	}
	v := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[1]})
	if err := cql.Query(`ALTER TABLE polls ADD options_frozen boolean static`).Exec(); err != nil {
		t.Fatal(err)
	}
	t.Logf("vote while the freeze fails: %d %s", v.Status, v.Raw)
	if v.Status == http.StatusServiceUnavailable {
		if v.Code() != "UNAVAILABLE" || v.Header.Get("Retry-After") == "" {
			t.Fatalf("refused vote: %v %s", v.Header, v.Raw)
		}
		// Refused, so nothing was promised; the retry freezes and is
		// accepted.
		v = e.c.Do("POST", path, voter, map[string]any{"option_id": opts[1]})
	}
	v.Must(t, http.StatusAccepted)
	r := e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"options": []map[string]any{{"text": "X"}, {"text": "Y"}}})
	if r.Status != http.StatusConflict || r.Code() != "OPTIONS_FROZEN" {
		t.Fatalf("options replaced under a vote answered 202: %d %s", r.Status, r.Raw)
	}
}

// TestWorkerRefusesAnOptionThePollLacks puts on the votes topic what an
// API with a stale view would have produced: a vote for an option the poll
// does not have, with the voter's flag set. The worker must not record a
// ballot that no option counts; it dead-letters it with a clear failure
// and frees the voter, who can then vote.
func TestWorkerRefusesAnOptionThePollLacks(t *testing.T) {
	e := start(t, asyncConfig(t), true)
	owner, _ := e.c.Account()
	voterTok, voterID := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	// The id an API of this deployment would have issued (sealed with its
	// secret): a forged one is 404 to the voter, whatever happens to it.
	rid := vote.NewRequestIDs([]byte(e.cfg.JWTSecret)).New(pid, vid, "")
	msg := vote.Message{RequestID: rid, VoteID: id.New(), PollID: pid, VoterID: vid,
		OptionIDs: []id.ID{id.New()}, AcceptedAt: time.Now().UTC(), PollSeenAt: time.Now().UTC()}
	body, _ := json.Marshal(msg)
	rdb := testenv.Redis(t)
	rdb.Set(context.Background(), redisx.VoterFlag(pid, vid), "q:"+rid.String(), time.Hour)
	rdb.Set(context.Background(), redisx.AcceptedRequest(pid, vid, rid), pollID, time.Hour)
	w := kafkax.NewWriter(e.cfg.Kafka, e.cfg.Kafka.VotesTopic)
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: vid[:], Value: body}); err != nil {
		t.Fatal(err)
	}
	st := settle(t, e, pollID, map[string]string{voterTok: rid.String()}, 20*time.Second)[voterTok]
	if st.Str("state") != "failed" || st.Body["error"].(map[string]any)["code"] != "INVALID_OPTION" {
		t.Fatalf("request state %s", st.Raw)
	}
	if n := len(rows(t, e.app, pollID)); n != 0 {
		t.Fatalf("%d rows for a vote on no option", n)
	}
	if d := dlqDepth(t, e); d != 1 {
		t.Fatalf("dlq holds %d, want the refused vote", d)
	}
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voterTok, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
	testenv.Eventually(t, 20*time.Second, func() error {
		if total, _ := e.c.Results(owner, pollID, "final"); total != 1 {
			return fmt.Errorf("final %d", total)
		}
		return nil
	})
}

// TestPendingFlagDoesNotLockOut leaves behind what an API killed between
// setting a voter's flag and producing the vote leaves: a pending flag, here
// one set 10 s ago (its TTL is the pending TTL less 10 s). The voter's next
// attempt must go through, not get 409; since the flag's holder could still
// be alive, it is recorded before it is answered (200), never a 202.
func TestPendingFlagDoesNotLockOut(t *testing.T) {
	e := start(t, asyncConfig(t), true)
	owner, _ := e.c.Account()
	voterTok, voterID := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	testenv.Redis(t).Set(context.Background(), redisx.VoterFlag(pid, vid), "p:"+id.New().String(), time.Minute-10*time.Second)
	r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voterTok, map[string]any{"option_id": opts[0]})
	if r.Status != http.StatusOK {
		t.Fatalf("voter locked out by a flag nothing was produced for: %d %s", r.Status, r.Raw)
	}
	if n := len(rows(t, e.app, pollID)); n != 1 {
		t.Fatalf("%d rows after the 200, want 1", n)
	}
	// Once queued, a second request is refused at once.
	if r := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voterTok, map[string]any{"option_id": opts[1]}); r.Status != http.StatusConflict {
		t.Fatalf("second vote: %d %s", r.Status, r.Raw)
	}
}

// TestRetryAfterCloseReturnsOriginal retries a vote with its
// Idempotency-Key after the poll closed: the original outcome, never 409.
func TestRetryAfterCloseReturnsOriginal(t *testing.T) {
	for _, mode := range []string{"async", "sync"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testenv.Config(t)
			cfg.Vote.Mode = mode
			e := start(t, cfg, mode == "async")
			owner, _ := e.c.Account()
			voter, _ := e.c.Account()
			pollID, opts := e.c.Poll(owner, nil)
			path := "/v1/polls/" + pollID + "/votes"
			first := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[2]}, "Idempotency-Key", "once")
			if first.Status != http.StatusOK && first.Status != http.StatusAccepted {
				t.Fatalf("vote: %d %s", first.Status, first.Raw)
			}
			e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
			time.Sleep(2 * cfg.Poll.CacheTTL)
			retry := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[2]}, "Idempotency-Key", "once")
			if retry.Status != http.StatusOK && retry.Status != http.StatusAccepted {
				t.Fatalf("retry after close: %d %s", retry.Status, retry.Raw)
			}
			if retry.Str("request_id") != first.Str("request_id") {
				t.Fatalf("retry request_id %s, original %s", retry.Str("request_id"), first.Str("request_id"))
			}
			if first.Status == http.StatusOK && retry.Str("vote_id") != first.Str("vote_id") {
				t.Fatalf("retry vote_id %s, original %s", retry.Str("vote_id"), first.Str("vote_id"))
			}
			// A new key is a new request: the poll is closed.
			if r := e.c.Do("POST", path, voter, map[string]any{"option_id": opts[2]}, "Idempotency-Key", "other"); r.Code() != "POLL_NOT_ACTIVE" {
				t.Fatalf("new request after close: %d %s", r.Status, r.Raw)
			}
		})
	}
}
