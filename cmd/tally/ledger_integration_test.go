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
