//go:build integration

package httpapi_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
)

// The owner-action audit chain (issue 23, item 4) against the real router
// and Cassandra: owner actions through the API make one valid chain, read
// back through GET /v1/polls/{id}/audit; an entry edited or deleted in the
// table fails verification; racing owner actions never fork it.

// auditPage is GET /v1/polls/{id}/audit's answer, detail kept as the exact
// bytes sent, which are the bytes the hash covers.
type auditPage struct {
	PollID  string `json:"poll_id"`
	Entries []struct {
		Seq      int64           `json:"seq"`
		At       time.Time       `json:"at"`
		Event    string          `json:"event"`
		ActorID  id.ID           `json:"actor_id"`
		Detail   json.RawMessage `json:"detail"`
		PrevHash string          `json:"prev_hash"`
		Hash     string          `json:"hash"`
	} `json:"entries"`
	Head *struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	} `json:"head"`
	NextAfterSeq *int64 `json:"next_after_seq"`
}

// readChain reads the poll's whole chain through the API, limit entries a
// page, and returns it as entries with the last page's head.
func (e *env) readChain(t *testing.T, token, pollID string, limit int) ([]audit.Entry, audit.Head) {
	t.Helper()
	pid, _ := id.Parse(pollID)
	var (
		out   []audit.Entry
		head  audit.Head
		after int64
	)
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("pages never end")
		}
		r := e.c.Do("GET", fmt.Sprintf("/v1/polls/%s/audit?limit=%d&after_seq=%d", pollID, limit, after), token, nil).
			Must(t, http.StatusOK)
		var p auditPage
		if err := json.Unmarshal(r.Raw, &p); err != nil {
			t.Fatalf("decode %s: %v", r.Raw, err)
		}
		if p.PollID != pollID || len(p.Entries) > limit {
			t.Fatalf("page %s", r.Raw)
		}
		for _, x := range p.Entries {
			prev, err1 := hex.DecodeString(x.PrevHash)
			hash, err2 := hex.DecodeString(x.Hash)
			if err := errors.Join(err1, err2); err != nil {
				t.Fatalf("hashes of seq %d: %v", x.Seq, err)
			}
			out = append(out, audit.Entry{PollID: pid, Seq: x.Seq, At: x.At, Kind: x.Event, ActorID: x.ActorID,
				Detail: x.Detail, PrevHash: prev, Hash: hash})
		}
		if p.Head != nil {
			h, err := hex.DecodeString(p.Head.Hash)
			if err != nil {
				t.Fatal(err)
			}
			head = audit.Head{Seq: p.Head.Seq, Hash: h}
		}
		if p.NextAfterSeq == nil {
			return out, head
		}
		after = *p.NextAfterSeq
	}
}

func kinds(entries []audit.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Kind)
	}
	return out
}

func TestAuditChainOwnerActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, ownerID := e.c.Account()
	stranger, _ := e.c.Account()
	// Created with an Idempotency-Key and replayed: one poll.created.
	create := map[string]any{"title": "Audited", "settings": map[string]any{"allow_anonymous": true, "anonymous_access": "invite"},
		"options": []map[string]any{{"text": "A", "display_order": 0}, {"text": "B", "display_order": 1}}}
	key := "audit-" + id.New().String()
	pollID := e.c.Do("POST", "/v1/polls", owner, create, "Idempotency-Key", key).Must(t, http.StatusCreated).Str("poll_id")
	if again := e.c.Do("POST", "/v1/polls", owner, create, "Idempotency-Key", key); again.Str("poll_id") != pollID {
		t.Fatalf("replayed create: %d %s", again.Status, again.Raw)
	}
	path := "/v1/polls/" + pollID
	e.c.Do("PATCH", path, owner, map[string]any{"title": "Renamed"}).Must(t, http.StatusOK)
	e.c.Do("PATCH", path, owner, map[string]any{"options": []map[string]any{
		{"text": "Tea", "display_order": 0}, {"text": "Coffee", "display_order": 1}}}).Must(t, http.StatusOK)
	e.c.Do("POST", path+"/invites", owner, map[string]any{"count": 2}).Must(t, http.StatusCreated)
	e.c.Do("PATCH", path, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)

	// Two entries a page: three pages, one chain, ending at the head.
	entries, head := e.readChain(t, owner, pollID, 2)
	want := []string{audit.PollCreated, audit.PollUpdated, audit.OptionsReplaced, audit.InvitesMinted, audit.PollClosed}
	if fmt.Sprint(kinds(entries)) != fmt.Sprint(want) {
		t.Fatalf("chain %v, want %v", kinds(entries), want)
	}
	pid, _ := id.Parse(pollID)
	owned, _ := id.Parse(ownerID)
	for _, x := range entries {
		if x.ActorID != owned {
			t.Fatalf("seq %d actor %s, want the owner", x.Seq, x.ActorID)
		}
	}
	got, err := audit.Verify(pid, entries, &head)
	if err != nil || got.Seq != 5 || head.Seq != 5 {
		t.Fatalf("verify through the API: head %v (API head %v): %v", got, head, err)
	}
	// One page holds the same chain.
	whole, _ := e.readChain(t, owner, pollID, 1000)
	if len(whole) != 5 || hex.EncodeToString(whole[4].Hash) != hex.EncodeToString(head.Hash) {
		t.Fatalf("one page: %d entries", len(whole))
	}
	// The stored rows verify too (the operator's path, tally audit verify).
	if h, n, err := e.app.VerifyAuditChain(ctx, pid, &head); err != nil || n != 5 || h.Seq != 5 {
		t.Fatalf("stored chain: head %v, %d entries: %v", h, n, err)
	}

	// Only the owner reads it; bad paging is a clear 400.
	refused(t, "stranger", e.c.Do("GET", path+"/audit", stranger, nil), http.StatusForbidden, "NOT_POLL_OWNER")
	refused(t, "no token", e.c.Do("GET", path+"/audit", "", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
	refused(t, "unknown poll", e.c.Do("GET", "/v1/polls/"+id.New().String()+"/audit", owner, nil),
		http.StatusNotFound, "POLL_NOT_FOUND")
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after_seq=-1", "after_seq=1.5"} {
		refused(t, q, e.c.Do("GET", path+"/audit?"+q, owner, nil), http.StatusBadRequest, "VALIDATION_FAILED")
	}

	// Tampering in the table: one entry's detail edited.
	cql := func(stmt string, args ...any) {
		t.Helper()
		if err := e.app.CQL.Session.Query(stmt, args...).WithContext(ctx).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	cql(`UPDATE audit_chain SET detail = ? WHERE poll_id = ? AND seq = ?`, `{"fields":["description"]}`, pid, int64(2))
	var ce *audit.ChainError
	if _, _, err := e.app.VerifyAuditChain(ctx, pid, &head); !errors.As(err, &ce) || ce.Seq != 2 {
		t.Fatalf("edited entry: %v, want a break at seq 2", err)
	}
	edited, _ := e.readChain(t, owner, pollID, 100)
	if _, err := audit.Verify(pid, edited, &head); !errors.As(err, &ce) || ce.Seq != 2 {
		t.Fatalf("edited entry through the API: %v, want a break at seq 2", err)
	}
	// Put it back: the chain verifies again.
	cql(`UPDATE audit_chain SET detail = ? WHERE poll_id = ? AND seq = ?`, string(entries[1].Detail), pid, int64(2))
	if _, _, err := e.app.VerifyAuditChain(ctx, pid, &head); err != nil {
		t.Fatalf("restored entry: %v", err)
	}

	// The last entry deleted: a valid shorter chain alone, a break against
	// the anchored head.
	cql(`DELETE FROM audit_chain WHERE poll_id = ? AND seq = ?`, pid, int64(5))
	if _, n, err := e.app.VerifyAuditChain(ctx, pid, nil); err != nil || n != 4 {
		t.Fatalf("without an anchor: %d entries, %v", n, err)
	}
	if _, _, err := e.app.VerifyAuditChain(ctx, pid, &head); !errors.As(err, &ce) || ce.Seq != 5 {
		t.Fatalf("deleted last entry: %v, want a break at the anchored seq 5", err)
	}
	// A middle entry deleted: a gap, anchor or not.
	cql(`DELETE FROM audit_chain WHERE poll_id = ? AND seq = ?`, pid, int64(3))
	if _, _, err := e.app.VerifyAuditChain(ctx, pid, nil); !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("deleted middle entry: %v, want a break at seq 3", err)
	}
}

// Owner actions racing on one poll: every PATCH answered 200 has exactly
// one entry, and the chain stays one line (no two entries on one seq, no
// fork), read back through the API.
func TestAuditChainConcurrentPatches(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	path := "/v1/polls/" + pollID
	const rounds = 5
	ok := 0
	for round := range rounds {
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			status [2]int
		)
		for i := range 2 {
			wg.Go(func() {
				<-start
				r := e.c.Do("PATCH", path, owner, map[string]any{"description": fmt.Sprintf("round %d writer %d", round, i)})
				status[i] = r.Status
			})
		}
		close(start)
		wg.Wait()
		for _, s := range status {
			switch s {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable: // lost every retry of the poll's own conditional write
			default:
				t.Fatalf("PATCH answered %d", s)
			}
		}
	}
	entries, head := e.readChain(t, owner, pollID, 1000)
	pid, _ := id.Parse(pollID)
	if _, err := audit.Verify(pid, entries, &head); err != nil {
		t.Fatalf("chain after racing PATCHes: %v", err)
	}
	updated := 0
	for _, x := range entries {
		if x.Kind == audit.PollUpdated {
			updated++
		}
	}
	if updated != ok || len(entries) != ok+1 {
		t.Fatalf("%d PATCHes answered 200, %d poll.updated entries of %d", ok, updated, len(entries))
	}
}

// Appends racing straight on the real table (no poll write between them to
// space them out): each lands once, on its own seq, in one chain.
func TestAuditChainConcurrentAppends(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pid, actor := id.New(), id.New()
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = e.app.Audit.Append(ctx, pid, actor, audit.PollUpdated, map[string]any{"writer": i})
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	head, got, err := e.app.VerifyAuditChain(ctx, pid, nil)
	if err != nil || got != n || head.Seq != n {
		t.Fatalf("chain of %d racing appends: head %v, %d entries: %v", n, head, got, err)
	}
	if mfs, err := e.app.Registry.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "tally_audit_chain_conflicts_total" {
				t.Logf("appends that lost a race and re-read the head: %v", mf.GetMetric()[0].GetCounter().GetValue())
			}
		}
	}
	chain, err := e.app.Audit.Chain(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float64]bool{}
	for _, x := range chain {
		var d map[string]any
		_ = json.Unmarshal(x.Detail, &d)
		w, _ := d["writer"].(float64)
		if seen[w] {
			t.Fatalf("writer %v recorded twice", w)
		}
		seen[w] = true
	}
}

// An owner action whose entry cannot be written is answered with the error
// (503 UNAVAILABLE in the envelope), never 200: here the chain's table is
// gone from the test's keyspace. The action itself was applied first (the
// entry follows the action, docs/architecture.md "The audit chain").
func TestAuditChainUnwritableFailsTheAction(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	if err := e.app.CQL.Session.Query(`DROP TABLE audit_chain`).Exec(); err != nil {
		t.Fatal(err)
	}
	r := e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"title": "Unaudited"})
	refused(t, "PATCH without its entry", r, http.StatusServiceUnavailable, "UNAVAILABLE")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", r.Header)
	}
	refused(t, "audit read", e.c.Do("GET", "/v1/polls/"+pollID+"/audit", owner, nil),
		http.StatusServiceUnavailable, "UNAVAILABLE")
	mfs, err := e.app.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "tally_audit_chain_append_failures_total" {
			for _, m := range mf.GetMetric() {
				failed += m.GetCounter().GetValue()
			}
		}
	}
	if failed != 1 {
		t.Fatalf("tally_audit_chain_append_failures_total = %v, want 1", failed)
	}
}
