//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
)

// tally audit verify and tally verify --poll find an edited entry, and,
// given the anchored head, a deleted last entry of the poll's audit chain.
func TestAuditVerifyCLI(t *testing.T) {
	r := newCLIRig(t)
	log := audit.New(cassandra.NewAuditStore(r.s), cassandra.NewAuditChainStore(r.s, r.cfg.Cassandra), nil,
		zap.NewNop(), prometheus.NewRegistry())
	pid, owner := id.New(), id.New()
	var last audit.Entry
	for i, kind := range []string{audit.PollCreated, audit.PollUpdated, audit.PollClosed} {
		e, err := log.Append(r.ctx, pid, owner, kind, map[string]any{"step": i})
		if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	head := audit.Head{Seq: last.Seq, Hash: last.Hash}.String()

	check := func(what string, wantValid bool, args ...string) {
		t.Helper()
		out, code := runTally(t, r.bin, r.env, append([]string{"audit", "verify", "--poll", pid.String()}, args...)...)
		var rep auditVerifyReport
		if err := json.Unmarshal(firstLine(out), &rep); err != nil {
			t.Fatalf("%s: exit %d, %v: %s", what, code, err, out)
		}
		if rep.Valid != wantValid || (code == 0) != wantValid {
			t.Fatalf("%s: exit %d, report %+v, want valid=%v", what, code, rep, wantValid)
		}
	}
	check("intact", true, "--head", head)

	cql := func(stmt string, args ...any) {
		t.Helper()
		if err := r.s.Session.Query(stmt, args...).WithContext(r.ctx).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	cql(`UPDATE audit_chain SET detail = ? WHERE poll_id = ? AND seq = ?`, `{"step":7}`, pid, int64(2))
	check("edited", false)
	if _, code := runTally(t, r.bin, r.env, "verify", "--poll", pid.String()); code == 0 {
		t.Fatal("tally verify --poll passed an edited audit chain")
	}
	cql(`UPDATE audit_chain SET detail = ? WHERE poll_id = ? AND seq = ?`, `{"step":1}`, pid, int64(2))
	check("restored", true, "--head", head)

	cql(`DELETE FROM audit_chain WHERE poll_id = ? AND seq = ?`, pid, int64(3))
	check("last deleted, no anchor", true)
	check("last deleted, anchored", false, "--head", head)
	if _, code := runTally(t, r.bin, r.env, "verify", "--poll", pid.String(), "--audit-head", head); code == 0 {
		t.Fatal("tally verify --poll --audit-head passed a chain missing its anchored last entry")
	}
}

// firstLine is the first line of the command's output (the report; logs go
// to standard error).
func firstLine(b []byte) []byte {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return []byte(s)
}
