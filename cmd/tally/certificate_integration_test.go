//go:build integration

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/testenv"
)

// A certified tally carries its certificate in results and frames: the
// ballots it counted and the audit chain's head when it was frozen. That
// head is the anchor `tally verify` checks the chain against by default,
// so deleting the chain's last entry, which leaves a valid shorter chain,
// is caught without anyone passing a head by hand.
func TestCertifiedTallyAnchorsTheAuditChain(t *testing.T) {
	cfg := testenv.Config(t)
	env := testenv.Environ(cfg)
	bin := testenv.Binary(t)
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)

	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"bot_policy": "off"}, "yes", "no")
	for _, o := range []int{0, 1, 0} {
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[o]}).Must(t, http.StatusOK)
	}
	open := c.Do("GET", "/v1/polls/"+pollID+"/results", owner, nil).Must(t, http.StatusOK)
	if got := open.Body["tally_state"]; got != "live" {
		t.Fatalf("open poll: tally_state %v, want live: %s", got, open.Raw)
	}
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	// The close's own reconciliation may have frozen it already; either
	// way the state is never live once closed.
	if got := c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil).Must(t, http.StatusOK).Body["tally_state"]; got != "reconciling" && got != "certified" {
		t.Fatalf("closed poll: tally_state %v, want reconciling or certified", got)
	}
	if out, code := runTally(t, bin, env, "reconcile", "--poll", pollID, "--final"); code != 0 {
		t.Fatalf("reconcile --final: exit %d: %s", code, out)
	}

	chain := c.Do("GET", "/v1/polls/"+pollID+"/audit", owner, nil).Must(t, http.StatusOK)
	head, _ := chain.Body["head"].(map[string]any)
	final := c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil).Must(t, http.StatusOK)
	var res struct {
		TallyState  string `json:"tally_state"`
		TotalVotes  int64  `json:"total_votes"`
		Certificate *struct {
			Ballots   int64 `json:"ballots"`
			AuditHead *struct {
				Seq  int64  `json:"seq"`
				Hash string `json:"hash"`
			} `json:"audit_head"`
		} `json:"certificate"`
	}
	if err := json.Unmarshal(final.Raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.TallyState != "certified" || res.Certificate == nil || res.Certificate.Ballots != 3 || res.Certificate.AuditHead == nil {
		t.Fatalf("frozen poll: %s", final.Raw)
	}
	if a := res.Certificate.AuditHead; float64(a.Seq) != head["seq"] || a.Hash != head["hash"] || a.Seq < 2 {
		t.Fatalf("anchored head %+v, chain head %v", a, head)
	}
	if got := c.Do("GET", "/v1/polls/"+pollID+"/results", owner, nil).Must(t, http.StatusOK).Body["tally_state"]; got != "certified" {
		t.Fatalf("live results of a frozen poll: tally_state %v, want certified", got)
	}

	// Intact: both checks pass against the stored anchor.
	if out, code := runTally(t, bin, env, "audit", "verify", "--poll", pollID); code != 0 {
		t.Fatalf("audit verify of an intact chain: exit %d: %s", code, out)
	}
	// Delete the last entry: the chain left is valid on its own, and only
	// the certificate's anchor shows what is missing.
	s, err := cassandra.Connect(cfg.Cassandra, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Session.Query(`DELETE FROM audit_chain WHERE poll_id = ? AND seq = ?`, pollID, res.Certificate.AuditHead.Seq).
		WithContext(context.Background()).Exec(); err != nil {
		t.Fatal(err)
	}
	out, code := runTally(t, bin, env, "audit", "verify", "--poll", pollID)
	var rep auditVerifyReport
	if err := json.Unmarshal(firstLine(out), &rep); err != nil || code == 0 || rep.Valid || rep.AnchorFrom != "certified final tally" {
		t.Fatalf("audit verify after deleting the last entry: exit %d, %+v (%v): %s", code, rep, err, out)
	}
	if out, code := runTally(t, bin, env, "verify", "--poll", pollID); code == 0 {
		t.Fatalf("tally verify --poll passed a chain missing its anchored last entry: %s", out)
	}
}
