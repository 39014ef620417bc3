//go:build integration

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestReceiptCheckCLI runs `tally receipt check` as a voter would, on the
// receipt file the voting page writes, against a real server: recorded
// (no proof yet) before the freeze, verified with the route's proof after
// it, fully offline from saved keys and proof, and exit 1 with a FAILED
// line for a changed choice and a changed proof.
func TestReceiptCheckCLI(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(wantCode int, wantLines ...string) func(args ...string) string {
		return func(args ...string) string {
			t.Helper()
			out, code := runTally(t, bin, env, append([]string{"receipt", "check"}, args...)...)
			if code != wantCode {
				t.Fatalf("receipt check %v: exit %d, want %d:\n%s", args, code, wantCode, out)
			}
			for _, l := range wantLines {
				if !strings.Contains(string(out), l) {
					t.Fatalf("receipt check %v: no %q in:\n%s", args, l, out)
				}
			}
			return string(out)
		}
	}

	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"bot_policy": "off"}, "yes", "no")
	var mine []byte
	for i, o := range []int{0, 1, 0} {
		voter, _ := c.Account()
		res := c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[o]}).Must(t, http.StatusOK)
		if i != 1 {
			continue
		}
		var ans struct {
			VoteID  string          `json:"vote_id"`
			Receipt json.RawMessage `json:"receipt"`
			Salt    string          `json:"salt"`
		}
		if err := json.Unmarshal(res.Raw, &ans); err != nil || ans.Salt == "" || len(ans.Receipt) == 0 {
			t.Fatalf("vote answer without receipt and salt: %s", res.Raw)
		}
		// The file the page writes.
		mine, _ = json.Marshal(map[string]any{"receipt": ans.Receipt, "salt": ans.Salt,
			"choice":   map[string]any{"option_ids": []string{opts[1]}},
			"poll_url": srv.URL + "/p/" + pollID, "keys_url": srv.URL + "/.well-known/tally-receipt-keys"})
	}
	good := write("receipt.json", mine)
	otherChoice := write("other.json", []byte(strings.Replace(string(mine), opts[1], opts[0], 1)))
	noChoice := map[string]any{}
	_ = json.Unmarshal(mine, &noChoice)
	delete(noChoice, "choice")
	bare, _ := json.Marshal(noChoice)
	withoutChoice := write("nochoice.json", bare)

	// Before the freeze: signature and opening verify, the ledger says recorded.
	run(0, "ok       receipt signature", "ok       salt opens the commitment", "choice: "+opts[1]+" “no”",
		"pending  inclusion in the ledger: recorded")(good, "--api", srv.URL)
	run(0, "choice: "+opts[1]+" “no”")(withoutChoice, "--api", srv.URL)
	run(1, "FAILED   salt opens the commitment", "NOT VERIFIED")(otherChoice, "--api", srv.URL)
	// Not a receipt file: exit 1, the sentence on stderr (logged by runTally).
	run(1)(write("junk.json", []byte(`{"vote_id": "x"}`)))

	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	if out, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--final"); code != 0 {
		t.Fatalf("reconcile --final: exit %d: %s", code, out)
	}

	// After it: the route's proof leads to the signed head.
	out := run(0, "ok       inclusion in the ledger: leaf", "of 3 leads to root", "ok       tree head signature",
		"verified: ")(good, "--api", srv.URL)
	t.Logf("tally receipt check --api:\n%s", out)

	// Fully offline, from saved copies of the keys and the proof.
	var voteID string
	{
		var f struct {
			Receipt struct {
				VoteID string `json:"vote_id"`
			} `json:"receipt"`
		}
		_ = json.Unmarshal(mine, &f)
		voteID = f.Receipt.VoteID
	}
	keys := write("keys.json", c.Do("GET", "/.well-known/tally-receipt-keys", "", nil).Must(t, http.StatusOK).Raw)
	proofRaw := c.Do("GET", "/v1/polls/"+pollID+"/receipts/"+voteID, "", nil).Must(t, http.StatusOK).Raw
	proof := write("proof.json", proofRaw)
	run(0, "verified: ")(good, "--keys", keys, "--proof", proof)

	var p map[string]any
	_ = json.Unmarshal(proofRaw, &p)
	head := p["tree_head"].(map[string]any)
	root := []byte(head["root"].(string))
	if root[3] == 'A' {
		root[3] = 'B'
	} else {
		root[3] = 'A'
	}
	head["root"] = string(root)
	badProof, _ := json.Marshal(p)
	run(1, "FAILED   inclusion in the ledger", "NOT VERIFIED")(good, "--keys", keys, "--proof", write("bad-proof.json", badProof))
}
