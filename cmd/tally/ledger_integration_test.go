//go:build integration

package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestVerifyLedgerCLI runs `tally verify --poll ID --ledger FILE` as an
// auditor would, on the owner's export of a poll frozen by `tally reconcile
// --final`: exit 0 and a match line on the file as exported, exit 1 and a
// MISMATCH line once one byte of a commitment is changed, and `tally
// export --poll` writes a file that verifies too.
func TestVerifyLedgerCLI(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)

	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"bot_policy": "off"}, "yes", "no")
	for _, o := range []int{0, 1, 0, 0} {
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[o]}).Must(t, http.StatusOK)
	}
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if out, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--final"); code != 0 {
		t.Fatalf("reconcile --final: exit %d: %s", code, out)
	}
	exp := c.Do("GET", "/v1/polls/"+pollID+"/export?format=csv", owner, nil).Must(t, http.StatusOK)
	dir := t.TempDir()
	good := filepath.Join(dir, "poll.csv")
	if err := os.WriteFile(good, exp.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runTally(t, bin, env, "verify", "--poll", pollID, "--ledger", good)
	if code != 0 || !strings.Contains(string(out), "match: the export gives the signed ledger root and the certified tally") {
		t.Fatalf("verify --ledger of the export: exit %d:\n%s", code, out)
	}

	// One byte of the last ballot's commitment (the CSV's last column).
	bad := bytes.Clone(exp.Raw)
	i := bytes.LastIndexByte(bytes.TrimRight(bad, "\n"), ',') + 5
	if bad[i] == 'A' {
		bad[i] = 'B'
	} else {
		bad[i] = 'A'
	}
	badFile := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(badFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runTally(t, bin, env, "verify", "--poll", pollID, "--ledger", badFile)
	if code != 1 || !strings.Contains(string(out), "MISMATCH: ledger root") {
		t.Fatalf("verify --ledger of a changed export: exit %d:\n%s", code, out)
	}

	cli := filepath.Join(dir, "cli.jsonl")
	if out, code := runTally(t, bin, env, "export", "--poll", pollID, "--format", "jsonl", "--real-voter-ids", "--out", cli); code != 0 {
		t.Fatalf("tally export: exit %d: %s", code, out)
	}
	if out, code := runTally(t, bin, env, "verify", "--poll", pollID, "--ledger", cli, "--json"); code != 0 ||
		!strings.Contains(string(out), `"match": true`) {
		t.Fatalf("verify --ledger of tally export: exit %d:\n%s", code, out)
	}
}

// TestVerifyLedgerCLIWithChanges: `tally verify --ledger` over the exports
// (the owner's and `tally export`'s) of a poll with a changed ballot, a
// revoked one and one cast again after a revoke matches the signed root
// and the certified tally, which count the three current ballots only.
func TestVerifyLedgerCLIWithChanges(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)

	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"bot_policy": "off", "allow_vote_change": true}, "yes", "no")
	votes := "/v1/polls/" + pollID + "/votes"
	voters := make([]string, 4)
	for i := range voters {
		voters[i], _ = c.Account()
		c.Do("POST", votes, voters[i], map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	}
	c.Do("PUT", votes+"/me", voters[0], map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	c.Do("DELETE", votes+"/me", voters[1], nil).Must(t, http.StatusOK)
	c.Do("DELETE", votes+"/me", voters[2], nil).Must(t, http.StatusOK)
	c.Do("POST", votes, voters[2], map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if out, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--final"); code != 0 {
		t.Fatalf("reconcile --final: exit %d: %s", code, out)
	}
	dir := t.TempDir()
	for _, format := range []string{"csv", "jsonl"} {
		exp := c.Do("GET", "/v1/polls/"+pollID+"/export?format="+format, owner, nil).Must(t, http.StatusOK)
		file := filepath.Join(dir, "poll."+format)
		if err := os.WriteFile(file, exp.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runTally(t, bin, env, "verify", "--poll", pollID, "--ledger", file, "--json")
		if code != 0 || !strings.Contains(string(out), `"match": true`) || !strings.Contains(string(out), `"records": 3`) {
			t.Fatalf("verify --ledger of the %s export: exit %d:\n%s", format, code, out)
		}
	}
	cli := filepath.Join(dir, "cli.jsonl")
	if out, code := runTally(t, bin, env, "export", "--poll", pollID, "--format", "jsonl", "--real-voter-ids", "--out", cli); code != 0 {
		t.Fatalf("tally export: exit %d: %s", code, out)
	}
	if out, code := runTally(t, bin, env, "verify", "--poll", pollID, "--ledger", cli); code != 0 ||
		!strings.Contains(string(out), "match: the export gives the signed ledger root and the certified tally") {
		t.Fatalf("verify --ledger of tally export: exit %d:\n%s", code, out)
	}
}
