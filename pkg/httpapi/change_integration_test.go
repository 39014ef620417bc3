//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/verify"
)

// changedRow is a voter's row in votes, read with plain CQL.
type changedRow struct {
	Options []id.ID
	VoteID  id.ID
	Version int
	Revoked bool
	Found   bool
}

func (e *env) changedRowOf(t *testing.T, pollID, voterID string) changedRow {
	t.Helper()
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	var (
		s       changedRow
		version *int
		revoked *bool
	)
	err := e.app.CQL.Session.Query(`SELECT option_ids, vote_id, version, revoked FROM votes WHERE poll_id = ? AND voter_id = ?`,
		pid, vid).Scan(&s.Options, &s.VoteID, &version, &revoked)
	if err != nil {
		return s
	}
	s.Found = true
	if version != nil {
		s.Version = *version
	}
	s.Revoked = revoked != nil && *revoked
	return s
}

// indexEntries reads every index entry of the poll (4 buckets in tests).
func (e *env) indexEntries(t *testing.T, pollID string) map[string]changedRow {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT voter_id, options, vote_id, version, revoked FROM votes_by_poll WHERE poll_id = ? AND bucket IN (0, 1, 2, 3)`, pid).Iter()
	out := map[string]changedRow{}
	var (
		voter   id.ID
		s       changedRow
		version *int
		revoked *bool
	)
	for iter.Scan(&voter, &s.Options, &s.VoteID, &version, &revoked) {
		s.Found = true
		if version != nil {
			s.Version = *version
		}
		s.Revoked = revoked != nil && *revoked
		out[voter.String()] = s
		s, version, revoked = changedRow{}, nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read index: %v", err)
	}
	return out
}

// counters sums the poll's counter shards (4 in tests): ballots and votes
// per option.
func (e *env) counters(t *testing.T, pollID string) (int64, map[string]int64) {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT option_id, votes FROM vote_counts WHERE poll_id = ? AND shard IN (0, 1, 2, 3)`, pid).Iter()
	var (
		opt     id.ID
		n       int64
		ballots int64
	)
	votes := map[string]int64{}
	for iter.Scan(&opt, &n) {
		if opt == (id.ID{}) {
			ballots += n
		} else if n != 0 {
			votes[opt.String()] += n
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read counters: %v", err)
	}
	return ballots, votes
}

// rowsTally counts the current, unrevoked rows of the poll per option.
func (e *env) rowsTally(t *testing.T, pollID string) (int64, map[string]int64) {
	t.Helper()
	pid, _ := id.Parse(pollID)
	iter := e.app.CQL.Session.Query(`SELECT poll_id, option_ids, revoked FROM votes`).Iter()
	var (
		p       id.ID
		opts    []id.ID
		revoked *bool
		ballots int64
	)
	votes := map[string]int64{}
	for iter.Scan(&p, &opts, &revoked) {
		if p == pid && (revoked == nil || !*revoked) {
			ballots++
			for _, o := range opts {
				votes[o.String()]++
			}
		}
		opts, revoked = nil, nil
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("scan votes: %v", err)
	}
	return ballots, votes
}

// checkCounted holds rows, index and counters of the poll to one another:
// every row has its entry at its version with its options (revoked alike),
// and the counters equal the unrevoked rows.
func (e *env) checkCounted(t *testing.T, pollID string, voters []string) {
	t.Helper()
	index := e.indexEntries(t, pollID)
	for _, v := range voters {
		row, ent := e.changedRowOf(t, pollID, v), index[v]
		if !row.Found {
			continue
		}
		if !ent.Found || ent.Version != row.Version || ent.Revoked != row.Revoked || ent.VoteID != row.VoteID ||
			(!row.Revoked && !slices.Equal(ent.Options, row.Options)) {
			t.Errorf("voter %s: row %+v, index entry %+v", v, row, ent)
		}
	}
	rb, rv := e.rowsTally(t, pollID)
	cb, cv := e.counters(t, pollID)
	if rb != cb || fmt.Sprint(rv) != fmt.Sprint(cv) {
		t.Errorf("counters %d %v, rows %d %v", cb, cv, rb, rv)
	}
}

func changeSettings() map[string]any { return map[string]any{"allow_vote_change": true} }

// TestChangeRevokeAndVoteAgain walks one voter through a vote, a change, a
// revoke and a vote again on the real stack, with retries of each request
// in between, asserting on the stored row, the index and the counters.
func TestChangeRevokeAndVoteAgain(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, changeSettings())
	voter, voterID := e.c.Account()
	base := "/v1/polls/" + pollID + "/votes"

	first := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "vote-1").Must(t, http.StatusOK)
	voteID := first.Str("vote_id")

	ch := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "change-1").Must(t, http.StatusOK)
	if ch.Str("status") != "changed" || ch.Body["version"].(float64) != 1 || ch.Str("vote_id") != voteID || ch.Str("option_id") != opts[1] {
		t.Fatalf("change answered %s", ch.Raw)
	}
	if row := e.changedRowOf(t, pollID, voterID); row.Version != 1 || row.Revoked || len(row.Options) != 1 || row.Options[0].String() != opts[1] || row.VoteID.String() != voteID {
		t.Fatalf("row after change: %+v", row)
	}
	e.checkCounted(t, pollID, []string{voterID})

	// The original vote's retry: its original outcome, same vote id.
	if r := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "vote-1").Must(t, http.StatusOK); r.Str("vote_id") != voteID {
		t.Fatalf("retried vote answered %s", r.Raw)
	}
	// The change's retry: its own outcome, nothing written.
	rc := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "change-1").Must(t, http.StatusOK)
	if rc.Header.Get("Idempotent-Replayed") != "true" || rc.Body["version"].(float64) != 1 || rc.Str("status") != "changed" {
		t.Fatalf("retried change answered %v %s", rc.Header, rc.Raw)
	}

	rv := e.c.Do("DELETE", base+"/me", voter, nil, "Idempotency-Key", "revoke-1").Must(t, http.StatusOK)
	if rv.Str("status") != "revoked" || rv.Body["version"].(float64) != 2 || rv.Str("vote_id") != voteID {
		t.Fatalf("revoke answered %s", rv.Raw)
	}
	if row := e.changedRowOf(t, pollID, voterID); !row.Revoked || row.Version != 2 {
		t.Fatalf("row after revoke: %+v", row)
	}
	e.checkCounted(t, pollID, []string{voterID})
	if total, _ := e.c.Results(owner, pollID, "final"); total != 0 {
		t.Fatalf("final counts %d ballots after the revoke", total)
	}
	me := e.c.Do("GET", base+"/me", voter, nil).Must(t, http.StatusOK)
	if me.Body["has_voted"] != false || me.Body["revoked"] != true {
		t.Fatalf("votes/me after revoke: %s", me.Raw)
	}

	// Retries of the first vote and of the change cannot bring it back.
	e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "vote-1").Must(t, http.StatusOK)
	e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "change-1").Must(t, http.StatusOK)
	if row := e.changedRowOf(t, pollID, voterID); !row.Revoked || row.Version != 2 {
		t.Fatalf("row after retries: %+v", row)
	}
	// A change of a revoked ballot has nothing to change.
	if r := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[2]}); r.Status != http.StatusNotFound {
		t.Fatalf("change of a revoked ballot: %d %s", r.Status, r.Raw)
	}
	e.checkCounted(t, pollID, []string{voterID})

	// Voting again while open: the same vote id, the next version.
	again := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[2]}, "Idempotency-Key", "vote-2").Must(t, http.StatusOK)
	if again.Str("vote_id") != voteID {
		t.Fatalf("vote after revoke answered %s", again.Raw)
	}
	if row := e.changedRowOf(t, pollID, voterID); row.Revoked || row.Version != 3 || row.Options[0].String() != opts[2] {
		t.Fatalf("row after voting again: %+v", row)
	}
	e.c.Do("POST", base, voter, map[string]any{"option_id": opts[2]}, "Idempotency-Key", "vote-2").Must(t, http.StatusOK)
	if r := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}, "Idempotency-Key", "vote-3"); r.Code() != "ALREADY_VOTED" {
		t.Fatalf("a second vote: %d %s", r.Status, r.Raw)
	}
	e.checkCounted(t, pollID, []string{voterID})
	// tally=final of an open poll is counted at most once per interval.
	testenv.Eventually(t, 10*time.Second, func() error {
		total, votes := e.c.Results(owner, pollID, "final")
		if total != 1 || votes[opts[2]] != 1 || votes[opts[0]] != 0 || votes[opts[1]] != 0 {
			return fmt.Errorf("final %d %v", total, votes)
		}
		return nil
	})

	// The audit log says what happened, never the choice.
	pid, _ := id.Parse(pollID)
	events, err := e.app.Audit.List(context.Background(), pid, 100)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, ev := range events {
		kinds[ev.Kind]++
		for _, o := range opts {
			if strings.Contains(fmt.Sprint(ev.Detail), o) {
				t.Errorf("audit %s carries an option: %v", ev.Kind, ev.Detail)
			}
		}
	}
	if kinds["vote.changed"] != 2 || kinds["vote.revoked"] != 1 {
		t.Fatalf("audit events %v", kinds)
	}
}

// TestChangeAgainstChange sends two changes of one ballot at once, for
// many voters: each version is won by exactly one request, the loser is
// 409 VOTE_CHANGE_CONFLICT, and rows, index and counters agree.
func TestChangeAgainstChange(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_vote_change": true, "max_vote_changes": 10})
	base := "/v1/polls/" + pollID + "/votes"
	const voters = 20
	tokens, ids := make([]string, voters), make([]string, voters)
	for i := range voters {
		tokens[i], ids[i] = e.c.Account()
		e.c.Do("POST", base, tokens[i], map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	}
	type answer struct {
		status  int
		code    string
		version float64
	}
	answers := make([][2]answer, voters)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range voters {
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := e.c.Do("PUT", base+"/me", tokens[i], map[string]any{"option_id": opts[1+j]})
				v, _ := r.Body["version"].(float64)
				answers[i][j] = answer{r.Status, r.Code(), v}
			}()
		}
	}
	close(start)
	wg.Wait()
	conflicts := 0
	for i, a := range answers {
		ok := 0
		for _, x := range a {
			switch {
			case x.status == http.StatusOK:
				ok++
			case x.status == http.StatusConflict && x.code == "VOTE_CHANGE_CONFLICT":
				conflicts++
			default:
				t.Fatalf("voter %d: %+v", i, x)
			}
		}
		row := e.changedRowOf(t, pollID, ids[i])
		if ok == 2 && a[0].version == a[1].version {
			t.Fatalf("voter %d: two requests won version %v", i, a[0].version)
		}
		if ok == 0 || row.Version != ok {
			t.Fatalf("voter %d: %d changes answered 200, row at version %d", i, ok, row.Version)
		}
	}
	t.Logf("%d of %d concurrent changes lost their version (409)", conflicts, 2*voters)
	e.checkCounted(t, pollID, ids)
}

// TestChangeAfterCloseRefused: after the close a change and a revoke are
// 409 POLL_NOT_ACTIVE and change nothing, while a retry of a change made
// before the close still gets its outcome.
func TestChangeAfterCloseRefused(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, changeSettings())
	voter, voterID := e.c.Account()
	base := "/v1/polls/" + pollID + "/votes"
	e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "c1").Must(t, http.StatusOK)
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	testenv.Eventually(t, 5*time.Second, func() error {
		if r := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[2]}); r.Code() != "POLL_NOT_ACTIVE" {
			return fmt.Errorf("change after close: %d %s", r.Status, r.Raw)
		}
		return nil
	})
	if r := e.c.Do("DELETE", base+"/me", voter, nil); r.Status != http.StatusConflict || r.Code() != "POLL_NOT_ACTIVE" {
		t.Fatalf("revoke after close: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "c1"); r.Status != http.StatusOK || r.Body["version"].(float64) != 1 {
		t.Fatalf("retry after close: %d %s", r.Status, r.Raw)
	}
	if row := e.changedRowOf(t, pollID, voterID); row.Version != 1 || row.Revoked || row.Options[0].String() != opts[1] {
		t.Fatalf("row after refused changes: %+v", row)
	}
	e.checkCounted(t, pollID, []string{voterID})
}

// TestChangeRules: changes are opt-in, limited per voter, and a new ballot
// is checked as a new vote is (here on a ranked poll).
func TestChangeRules(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	voter, voterID := e.c.Account()

	plain, popts := e.c.Poll(owner, nil)
	e.c.Do("POST", "/v1/polls/"+plain+"/votes", voter, map[string]any{"option_id": popts[0]}).Must(t, http.StatusOK)
	if r := e.c.Do("PUT", "/v1/polls/"+plain+"/votes/me", voter, map[string]any{"option_id": popts[1]}); r.Status != http.StatusForbidden || r.Code() != "FORBIDDEN" {
		t.Fatalf("change on a poll without allow_vote_change: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("DELETE", "/v1/polls/"+plain+"/votes/me", voter, nil); r.Status != http.StatusForbidden {
		t.Fatalf("revoke on a poll without allow_vote_change: %d %s", r.Status, r.Raw)
	}
	for _, bad := range []any{0, 101, -1, "3"} {
		r := e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "b"}},
			"settings": map[string]any{"allow_vote_change": true, "max_vote_changes": bad}})
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Fatalf("max_vote_changes %v: %d %s", bad, r.Status, r.Raw)
		}
	}

	ranked, ropts := e.c.Poll(owner, map[string]any{"allow_vote_change": true, "max_vote_changes": 2, "method": "ranked",
		"min_votes_per_user": 2})
	got := e.c.Do("GET", "/v1/polls/"+ranked, owner, nil).Must(t, http.StatusOK)
	if s := got.Body["settings"].(map[string]any); s["allow_vote_change"] != true || s["max_vote_changes"].(float64) != 2 {
		t.Fatalf("settings read back: %v", s)
	}
	base := "/v1/polls/" + ranked + "/votes"
	e.c.Do("POST", base, voter, map[string]any{"option_ids": []string{ropts[0], ropts[1]}}).Must(t, http.StatusOK)
	if r := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_ids": []string{ropts[2]}}); r.Status != http.StatusBadRequest {
		t.Fatalf("too short a ranking: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_ids": []string{ropts[2], id.New().String()}}); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown option: %d %s", r.Status, r.Raw)
	}
	e.c.Do("PUT", base+"/me", voter, map[string]any{"option_ids": []string{ropts[2], ropts[0]}}).Must(t, http.StatusOK)
	e.c.Do("DELETE", base+"/me", voter, nil).Must(t, http.StatusOK)
	if r := e.c.Do("POST", base, voter, map[string]any{"option_ids": []string{ropts[1], ropts[0]}}); r.Status != http.StatusConflict || r.Code() != "VOTE_CHANGE_LIMIT" {
		t.Fatalf("third change past a limit of 2: %d %s", r.Status, r.Raw)
	}
	row := e.changedRowOf(t, ranked, voterID)
	if row.Version != 2 || !row.Revoked {
		t.Fatalf("row: %+v", row)
	}
	e.checkCounted(t, ranked, []string{voterID})
}

// TestChangesFrozenAndVerified: voters vote, change, revoke and vote again;
// the poll closes and its final tally is frozen. The frozen tally counts
// only current, unrevoked ballots (counted here from the rows with plain
// CQL), and tally verify finds rows, index, counters and final in
// agreement.
func TestChangesFrozenAndVerified(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, changeSettings())
	base := "/v1/polls/" + pollID + "/votes"
	const voters = 30
	ids := make([]string, voters)
	var wg sync.WaitGroup
	for i := range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, vid := e.c.Account()
			ids[i] = vid
			e.c.Do("POST", base, tok, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
			switch i % 3 {
			case 0:
				e.c.Do("PUT", base+"/me", tok, map[string]any{"option_id": opts[1+i%2]}).Must(t, http.StatusOK)
			case 1:
				e.c.Do("DELETE", base+"/me", tok, nil).Must(t, http.StatusOK)
				if i%2 == 1 {
					e.c.Do("POST", base, tok, map[string]any{"option_id": opts[2]}).Must(t, http.StatusOK)
				}
			}
		}()
	}
	wg.Wait()
	e.checkCounted(t, pollID, ids)
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)

	pid, _ := id.Parse(pollID)
	p, err := e.app.Polls.Get(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Tally.Reconcile(context.Background(), p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	rb, rv := e.rowsTally(t, pollID)
	total, votes := e.c.Results(owner, pollID, "final")
	for o, n := range votes {
		if n != rv[o] {
			t.Errorf("final %s = %d, rows %d", o, n, rv[o])
		}
	}
	if total != rb || rb != voters-voters/3+voters/6 {
		t.Fatalf("final %d ballots, rows %d", total, rb)
	}
	rep, err := e.app.Verify(context.Background(), verify.Options{Poll: pid, Splits: 4, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Consistent || rep.FinalsChecked != 1 || rep.IndexMismatched+rep.IndexMissing != 0 || len(rep.CounterDrift) != 0 {
		t.Fatalf("verify: %+v", rep)
	}
}

// TestChangeWhileQueued (async mode, worker in process): a change sent
// right after a queued vote's 202 is queued (202) only once that vote is
// recorded and counted, and is otherwise 409 VOTE_CHANGE_CONFLICT, never
// 404; every 202 completes, changes included. A revoke is queued too; the
// revoked voter's new vote goes through the queue and the worker writes it
// over the revoked row.
func TestChangeWhileQueued(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	e := newWorkerEnv(t, cfg)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, changeSettings())
	base := "/v1/polls/" + pollID + "/votes"
	const voters = 40
	tokens, ids, requests := make([]string, voters), make([]string, voters), make([]string, voters)
	early, changeReqs := make([]int, voters), make([]string, voters)
	completed := func(i int, rid string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() error {
			st := e.c.Do("GET", base+"/requests/"+rid, tokens[i], nil).Must(t, http.StatusOK)
			if st.Str("state") != "completed" {
				return fmt.Errorf("voter %d request %s: %s", i, rid, st.Raw)
			}
			return nil
		})
	}
	var wg sync.WaitGroup
	for i := range voters {
		tokens[i], ids[i] = e.c.Account()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.c.Do("POST", base, tokens[i], map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
			requests[i] = r.Str("request_id")
			c := e.c.Do("PUT", base+"/me", tokens[i], map[string]any{"option_id": opts[1]}, "Idempotency-Key", "early")
			if c.Status != http.StatusAccepted && c.Code() != "VOTE_CHANGE_CONFLICT" {
				t.Errorf("change right after a 202: %d %s", c.Status, c.Raw)
			}
			early[i] = c.Status
			if c.Status == http.StatusAccepted {
				changeReqs[i] = c.Str("request_id")
			}
		}()
	}
	wg.Wait()
	refused := 0
	for i := range voters {
		testenv.Eventually(t, 30*time.Second, func() error {
			st := e.c.Do("GET", base+"/requests/"+requests[i], tokens[i], nil).Must(t, http.StatusOK)
			if st.Str("state") != "completed" {
				return fmt.Errorf("request %d: %s", i, st.Raw)
			}
			return nil
		})
		if early[i] != http.StatusAccepted {
			refused++
			testenv.Eventually(t, 10*time.Second, func() error {
				c := e.c.Do("PUT", base+"/me", tokens[i], map[string]any{"option_id": opts[1]}, "Idempotency-Key", "early")
				if c.Status != http.StatusAccepted {
					return fmt.Errorf("change: %d %s", c.Status, c.Raw)
				}
				changeReqs[i] = c.Str("request_id")
				return nil
			})
		}
		completed(i, changeReqs[i])
		// Its retry now answers from the row: the change's own outcome.
		if c := e.c.Do("PUT", base+"/me", tokens[i], map[string]any{"option_id": opts[1]}, "Idempotency-Key", "early"); c.Status != http.StatusOK ||
			c.Str("request_id") != changeReqs[i] || c.Str("status") != "changed" || c.Body["version"].(float64) != 1 {
			t.Fatalf("retried queued change %d: %d %s", i, c.Status, c.Raw)
		}
	}
	t.Logf("%d of %d changes sent right after the 202 were refused as pending", refused, voters)
	e.checkCounted(t, pollID, ids)

	// Revoke half, and have them vote again through the queue.
	again := map[int]string{}
	for i := 0; i < voters; i += 2 {
		d := e.c.Do("DELETE", base+"/me", tokens[i], nil).Must(t, http.StatusAccepted)
		completed(i, d.Str("request_id"))
		r := e.c.Do("POST", base, tokens[i], map[string]any{"option_id": opts[2]}, "Idempotency-Key", "again").Must(t, http.StatusAccepted)
		again[i] = r.Str("request_id")
	}
	for i, rid := range again {
		testenv.Eventually(t, 30*time.Second, func() error {
			st := e.c.Do("GET", base+"/requests/"+rid, tokens[i], nil).Must(t, http.StatusOK)
			if st.Str("state") != "completed" {
				return fmt.Errorf("vote again %d: %s", i, st.Raw)
			}
			return nil
		})
		if row := e.changedRowOf(t, pollID, ids[i]); row.Revoked || row.Version != 3 || row.Options[0].String() != opts[2] {
			t.Fatalf("voter %d after voting again: %+v", i, row)
		}
		// The first vote's request still reads completed.
		if st := e.c.Do("GET", base+"/requests/"+requests[i], tokens[i], nil); st.Str("state") != "completed" {
			t.Fatalf("first request of voter %d: %s", i, st.Raw)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		rb, _ := e.rowsTally(t, pollID)
		cb, _ := e.counters(t, pollID)
		if rb != cb {
			return fmt.Errorf("counters %d ballots, rows %d", cb, rb)
		}
		return nil
	})
	e.checkCounted(t, pollID, ids)
}
