//go:build integration

package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// recordFlagged records a ballot carrying bot-signal flags through the real
// vote path (the conditional write, counters, index row), as the accept
// path does for a vote a rule flagged.
func recordFlagged(t *testing.T, a *app.App, pollID, option string, flags ...string) {
	t.Helper()
	ctx := context.Background()
	p, err := a.Polls.Get(ctx, mustUUID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), OptionIDs: []id.ID{mustUUID(t, option)},
		VoteID: id.New(), RequestID: id.New(), VotedAt: time.Now().UTC().Truncate(time.Millisecond),
		IP: "203.0.113.7", UserAgent: "bot/1.0", Flags: flags}
	if _, isNew, err := a.Votes.Record(ctx, p, b); err != nil || !isNew {
		t.Fatalf("record flagged ballot: new=%v %v", isNew, err)
	}
}

// optionVotes reads a results document's votes in display order.
func optionVotes(t *testing.T, doc any) []int64 {
	t.Helper()
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("results document %v", doc)
	}
	var out []int64
	for _, o := range m["options"].([]any) {
		out = append(out, int64(o.(map[string]any)["votes"].(float64)))
	}
	return out
}

func mustUUID(t *testing.T, s string) id.ID {
	t.Helper()
	id, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// retallies lists the poll's audit entries of re-tallies excluding flagged
// votes.
func retallies(t *testing.T, a *app.App, pollID string) []audit.Event {
	t.Helper()
	events, err := a.Audit.List(context.Background(), mustUUID(t, pollID), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range events {
		if e.Kind == audit.RetalliedExcludingFlagged {
			out = append(out, e)
		}
	}
	return out
}

// A poll with honest and flagged ballots: the owner's flag report counts
// both exactly, nobody else may read it, reads within the cache TTL are one
// audited re-tally, and the tally of record (live, final, the frozen final
// tally) keeps every flagged vote.
func TestFlagReport(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.Tally.FlagsCacheTTL = time.Minute })
	ctx := context.Background()
	owner, ownerID := e.c.Account()
	// Bot signals off for the API's votes, so the honest crowd (all from
	// 127.0.0.1) stays unflagged whatever the rules are; the flagged ballots
	// are recorded with their flags below.
	pollID, opts := e.c.Poll(owner, map[string]any{"bot_policy": "off"})
	for _, o := range []int{0, 0, 1} {
		voter, _ := e.c.Account()
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[o]}).Must(t, http.StatusOK)
	}
	for range 3 {
		recordFlagged(t, e.app, pollID, opts[1], "ip_burst")
	}
	recordFlagged(t, e.app, pollID, opts[2], "device_reuse", "ip_burst")
	recordFlagged(t, e.app, pollID, opts[2], "user_agent_burst")

	path := "/v1/polls/" + pollID + "/flags"
	r := e.c.Do("GET", path, owner, nil).Must(t, http.StatusOK)
	check := func(r map[string]any, total, flagged int64, reasons map[string]int64, all, excl []int64) {
		t.Helper()
		if int64(r["total_votes"].(float64)) != total || int64(r["flagged_votes"].(float64)) != flagged || r["poll_id"] != pollID {
			t.Fatalf("totals: %v", r)
		}
		by := r["by_reason"].(map[string]any)
		if len(by) != len(reasons) {
			t.Fatalf("by_reason %v, want %v", by, reasons)
		}
		for k, v := range reasons {
			if n, _ := by[k].(float64); int64(n) != v {
				t.Fatalf("by_reason %v, want %v", by, reasons)
			}
		}
		if got := optionVotes(t, r["results"]); !equal(got, all) {
			t.Fatalf("results %v, want %v", got, all)
		}
		if got := optionVotes(t, r["results_excluding_flagged"]); !equal(got, excl) {
			t.Fatalf("results excluding flagged %v, want %v", got, excl)
		}
		if tot := r["results_excluding_flagged"].(map[string]any)["total_votes"].(float64); int64(tot) != total-flagged {
			t.Fatalf("results excluding flagged total %v, want %d", tot, total-flagged)
		}
	}
	check(r.Body, 8, 5, map[string]int64{"ip_burst": 4, "device_reuse": 1, "user_agent_burst": 1}, []int64{2, 4, 2}, []int64{2, 1, 0})

	// A second read within the cache TTL is the same re-tally: same as_of,
	// one audit entry, naming the owner and the counts shown.
	again := e.c.Do("GET", path, owner, nil).Must(t, http.StatusOK)
	if again.Str("as_of") != r.Str("as_of") {
		t.Fatalf("second read as_of %s, first %s: not served from the cache", again.Str("as_of"), r.Str("as_of"))
	}
	if hits := metric(t, e.app.Registry, "tally_results_cache_total", "mode", "flags", "outcome", "hit"); hits != 1 {
		t.Fatalf("flags cache hits %v, want 1", hits)
	}
	entries := retallies(t, e.app, pollID)
	if len(entries) != 1 {
		t.Fatalf("%d re-tally audit entries after two reads, want 1", len(entries))
	}
	d := entries[0].Detail
	if entries[0].ActorID.String() != ownerID || d["by"] != "api" || d["ballots"] != float64(8) ||
		d["flagged_ballots"] != float64(5) || d["ballots_excluding_flagged"] != float64(3) {
		t.Fatalf("audit entry %+v", entries[0])
	}
	if n := metric(t, e.app.Registry, "tally_flag_retallies_total", "by", "api"); n != 1 {
		t.Fatalf("tally_flag_retallies_total{by=api} = %v, want 1", n)
	}

	// Nobody else reads it; an unknown poll is 404.
	stranger, _ := e.c.Account()
	if r := e.c.Do("GET", path, stranger, nil); r.Status != http.StatusForbidden || r.Code() != "NOT_POLL_OWNER" {
		t.Fatalf("another account: %d %s", r.Status, r.Raw)
	}
	anon := e.c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	if r := e.c.Do("GET", path, anon, nil); r.Status != http.StatusForbidden || r.Code() != "FORBIDDEN" {
		t.Fatalf("anonymous voter token: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("GET", path, "", nil); r.Status != http.StatusUnauthorized || r.Code() != "UNAUTHENTICATED" {
		t.Fatalf("no token: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("GET", "/v1/polls/"+id.New().String()+"/flags", owner, nil); r.Status != http.StatusNotFound ||
		r.Code() != "POLL_NOT_FOUND" {
		t.Fatalf("unknown poll: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("GET", "/v1/polls/nope/flags", owner, nil); r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("bad poll id: %d %s", r.Status, r.Raw)
	}
	if n := len(retallies(t, e.app, pollID)); n != 1 {
		t.Fatalf("refused reads wrote audit entries: %d", n)
	}

	// The tally of record keeps the flagged votes.
	for _, mode := range []string{"live", "final"} {
		if total, votes := e.c.Results(owner, pollID, mode); total != 8 || votes[opts[0]] != 2 || votes[opts[1]] != 4 || votes[opts[2]] != 2 {
			t.Fatalf("%s results: %d %v, want 8 [2 4 2]", mode, total, votes)
		}
	}

	// One more flagged vote; reconciliation drops the cached report, so the
	// next read is a new count and a new audited re-tally.
	recordFlagged(t, e.app, pollID, opts[0], "new_account_burst")
	rep, err := e.app.Reconcile(ctx, mustUUID(t, pollID), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows.Ballots != 9 || rep.Unflagged.Ballots != 3 || rep.Flagged.Ballots != 6 || !rep.CounterDrift.IsZero() {
		t.Fatalf("reconcile report %+v", rep)
	}
	r = e.c.Do("GET", path, owner, nil).Must(t, http.StatusOK)
	check(r.Body, 9, 6, map[string]int64{"ip_burst": 4, "device_reuse": 1, "user_agent_burst": 1, "new_account_burst": 1},
		[]int64{3, 4, 2}, []int64{2, 1, 0})
	if n := len(retallies(t, e.app, pollID)); n != 2 {
		t.Fatalf("%d re-tally audit entries, want 2", n)
	}

	// Closed and frozen: the final tally of record counts every ballot,
	// flagged ones included.
	closeAndRunFinal(t, ctx, e.app, e.c, owner, pollID)
	if total, votes := e.c.Results(owner, pollID, "final"); total != 9 || votes[opts[0]] != 3 || votes[opts[1]] != 4 || votes[opts[2]] != 2 {
		t.Fatalf("frozen final: %d %v, want 9 [3 4 2]", total, votes)
	}
	r = e.c.Do("GET", path, owner, nil).Must(t, http.StatusOK)
	check(r.Body, 9, 6, map[string]int64{"ip_burst": 4, "device_reuse": 1, "user_agent_burst": 1, "new_account_burst": 1},
		[]int64{3, 4, 2}, []int64{2, 1, 0})
	if r.Body["results"].(map[string]any)["status"] != "closed" {
		t.Fatalf("results status after close: %v", r.Body["results"])
	}
}
