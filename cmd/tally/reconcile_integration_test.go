//go:build integration

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestReconcileExcludeFlagged runs `tally reconcile --exclude-flagged` on a
// poll with honest and flagged ballots: it prints the tally with and
// without the flagged ones (the same figures as the owner's GET …/flags),
// audits the re-tally as the CLI's, and leaves the tally of record whole.
func TestReconcileExcludeFlagged(t *testing.T) {
	cfg := testenv.Config(t)
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	owner, _ := c.Account()
	// Bot signals off for the API's votes: the honest voters all come from
	// 127.0.0.1 and must stay unflagged whatever the rules are.
	pollID, opts := c.Poll(owner, map[string]any{"bot_policy": "off"}, "yes", "no")
	for _, o := range []int{0, 0, 0, 1} {
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[o]}).Must(t, http.StatusOK)
	}
	pid, err := id.Parse(pollID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	no := p.Options[1].ID
	for _, flags := range [][]string{{"ip_burst"}, {"ip_burst"}, {"ip_burst", "user_agent_burst"}, {"anonymous_ip"}} {
		b := &vote.Ballot{PollID: pid, VoterID: id.New(), OptionIDs: []id.ID{no}, VoteID: id.New(),
			RequestID: id.New(), VotedAt: time.Now().UTC().Truncate(time.Millisecond), IP: "198.51.100.9", Flags: flags}
		if _, isNew, err := a.Votes.Record(ctx, p, b); err != nil || !isNew {
			t.Fatalf("record flagged ballot: new=%v %v", isNew, err)
		}
	}

	if _, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--exclude-flagged", "--enqueue"); code == 0 {
		t.Fatal("--exclude-flagged with --enqueue succeeded")
	}
	out, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--exclude-flagged")
	var got struct {
		Reconcile tally.Report     `json:"reconcile"`
		Flags     tally.FlagReport `json:"flags"`
	}
	if err := json.Unmarshal(out, &got); err != nil || code != 0 {
		t.Fatalf("reconcile --exclude-flagged: exit %d, %v:\n%s", code, err, out)
	}
	yes := p.Options[0].ID
	f := got.Flags
	if f.PollID != pid || f.TotalVotes != 8 || f.FlaggedVotes != 4 || len(f.ByReason) != 3 || f.ByReason["ip_burst"] != 3 ||
		f.ByReason["user_agent_burst"] != 1 || f.ByReason["anonymous_ip"] != 1 {
		t.Fatalf("flags: %+v", f)
	}
	if r := f.Results; r.TotalVotes != 8 || r.Options[0].Votes != 3 || r.Options[1].Votes != 5 || r.Options[0].Label != "yes" {
		t.Fatalf("results: %+v", r)
	}
	if r := f.ResultsExcludingFlagged; r.TotalVotes != 4 || r.Options[0].Votes != 3 || r.Options[1].Votes != 1 || r.Options[0].Percentage != 75 {
		t.Fatalf("results excluding flagged: %+v", r)
	}
	rep := got.Reconcile
	if rep.Rows.Ballots != 8 || rep.Rows.Options[yes] != 3 || rep.Rows.Options[no] != 5 || rep.Unflagged.Ballots != 4 ||
		rep.Flagged.Ballots != 4 || !rep.CounterDrift.IsZero() || !rep.Repaired.IsZero() {
		t.Fatalf("reconcile report: %+v", rep)
	}

	// The owner's endpoint shows the same figures.
	r := c.Do("GET", "/v1/polls/"+pollID+"/flags", owner, nil).Must(t, http.StatusOK)
	var api tally.FlagReport
	if err := json.Unmarshal(r.Raw, &api); err != nil {
		t.Fatal(err)
	}
	if api.TotalVotes != f.TotalVotes || api.FlaggedVotes != f.FlaggedVotes || len(api.ByReason) != len(f.ByReason) ||
		api.ResultsExcludingFlagged.TotalVotes != f.ResultsExcludingFlagged.TotalVotes {
		t.Fatalf("endpoint %+v differs from the CLI %+v", api, f)
	}
	for k, v := range f.ByReason {
		if api.ByReason[k] != v {
			t.Fatalf("endpoint by_reason %v, CLI %v", api.ByReason, f.ByReason)
		}
	}
	for i, o := range f.ResultsExcludingFlagged.Options {
		if api.ResultsExcludingFlagged.Options[i].Votes != o.Votes || api.Results.Options[i].Votes != f.Results.Options[i].Votes {
			t.Fatalf("endpoint options %+v / %+v, CLI %+v / %+v", api.Results.Options, api.ResultsExcludingFlagged.Options,
				f.Results.Options, f.ResultsExcludingFlagged.Options)
		}
	}

	// The CLI's re-tally is in the audit log (actor: the system, by: cli).
	events, err := a.Audit.List(ctx, pid, 100)
	if err != nil {
		t.Fatal(err)
	}
	var cli []audit.Event
	for _, e := range events {
		if e.Kind == audit.RetalliedExcludingFlagged && e.Detail["by"] == "cli" {
			cli = append(cli, e)
		}
	}
	if len(cli) != 1 || cli[0].ActorID != (id.ID{}) || cli[0].Detail["ballots"] != float64(8) ||
		cli[0].Detail["flagged_ballots"] != float64(4) || cli[0].Detail["ballots_excluding_flagged"] != float64(4) {
		t.Fatalf("cli audit entries: %+v", cli)
	}

	// The tally of record still counts every ballot.
	for _, mode := range []string{"live", "final"} {
		if total, votes := c.Results(owner, pollID, mode); total != 8 || votes[opts[0]] != 3 || votes[opts[1]] != 5 {
			t.Fatalf("%s results after the re-tally: %d %v, want 8 [3 5]", mode, total, votes)
		}
	}
	// A plain run prints the report alone, and audits no re-tally.
	out, code = runTally(t, bin, env, "reconcile", "--poll", pollID)
	var plain tally.Report
	if err := json.Unmarshal(out, &plain); err != nil || code != 0 || plain.Rows.Ballots != 8 || plain.Flagged.Ballots != 4 {
		t.Fatalf("plain reconcile: exit %d, %v:\n%s", code, err, out)
	}
	events, err = a.Audit.List(ctx, pid, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == audit.RetalliedExcludingFlagged && e.Detail["by"] == "cli" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d cli re-tally entries after a plain run, want 1", n)
	}
}
