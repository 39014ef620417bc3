//go:build integration

package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/testenv"
)

// versionedAnswer is GET …/receipts/{vote_id}?version= as a client reads
// it.
type versionedAnswer struct {
	receiptAnswer
	CurrentVersion uint32  `json:"current_version"`
	Commitment     *string `json:"commitment"`
}

// receiptOf decodes an answer's receipt and salt (salt "" when absent).
func receiptOf(t *testing.T, r testenv.Response) (*receipt.Receipt, string) {
	t.Helper()
	var ans struct {
		Receipt *receipt.Receipt `json:"receipt"`
		Salt    string           `json:"salt"`
	}
	if err := json.Unmarshal(r.Raw, &ans); err != nil {
		t.Fatalf("answer %s: %v", r.Raw, err)
	}
	return ans.Receipt, ans.Salt
}

// publicKey is the receipt key the well-known route serves under kid.
func publicKey(t *testing.T, e *env, kid string) ed25519.PublicKey {
	t.Helper()
	var set struct{ Keys []receipt.JWK }
	_ = json.Unmarshal(e.c.Do("GET", "/.well-known/tally-receipt-keys", "", nil).Must(t, http.StatusOK).Raw, &set)
	for _, k := range set.Keys {
		if k.KeyID == kid {
			pub, err := receipt.PublicKeyFromJWK(k)
			if err != nil {
				t.Fatal(err)
			}
			return pub
		}
	}
	t.Fatalf("no served key %s", kid)
	return nil
}

// opens checks that r verifies with pub, carries version, and that salt
// opens its commitment to option.
func opens(t *testing.T, pub ed25519.PublicKey, r *receipt.Receipt, salt string, version uint32, option string) {
	t.Helper()
	if r == nil {
		t.Fatal("no receipt")
	}
	if err := r.VerifyWith(pub); err != nil {
		t.Fatalf("receipt v%d: %v", r.BallotVersion, err)
	}
	if r.BallotVersion != version {
		t.Fatalf("receipt ballot_version %d, want %d", r.BallotVersion, version)
	}
	s, err := receipt.DecodeSalt(salt)
	if err != nil {
		t.Fatalf("salt %q: %v", salt, err)
	}
	o, _ := id.Parse(option)
	if err := r.OpenCommitment(s, []id.ID{o}); err != nil {
		t.Fatalf("the salt does not open receipt v%d: %v", version, err)
	}
}

// storedCommitments reads the voter's vote row's and index entry's
// commitments with plain CQL.
func (e *env) storedCommitments(t *testing.T, pollID, voterID string) (row, entry []byte) {
	t.Helper()
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	if err := e.app.CQL.Session.Query(`SELECT commitment FROM votes WHERE poll_id = ? AND voter_id = ?`, pid, vid).Scan(&row); err != nil {
		t.Fatalf("vote row: %v", err)
	}
	if err := e.app.CQL.Session.Query(`SELECT commitment FROM votes_by_poll WHERE poll_id = ? AND bucket IN (0, 1, 2, 3) AND voter_id = ? ALLOW FILTERING`,
		pid, vid).Scan(&entry); err != nil {
		t.Fatalf("index entry: %v", err)
	}
	return row, entry
}

func (e *env) receiptStatus(t *testing.T, pollID, voteID string, version uint32, want int) versionedAnswer {
	t.Helper()
	path := "/v1/polls/" + pollID + "/receipts/" + voteID
	if version > 0 {
		path += fmt.Sprintf("?version=%d", version)
	}
	r := e.c.Do("GET", path, "", nil).Must(t, want)
	var a versionedAnswer
	if want == http.StatusOK {
		if err := json.Unmarshal(r.Raw, &a); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// TestChangedAndRevokedReceipts (sync mode, receipts on): a vote's receipt
// v1, a change's receipt v2 with a fresh salt opening the new commitment
// (stored on the row and the index entry); the route says v1 superseded
// and v2 recorded, then, after close and freeze, v2 included with a proof
// that verifies against the signed head and v1 still superseded. A
// revoked ballot's receipt is revoked and its vote id is in neither the
// ledger nor the export; a vote cast again after a revoke gets receipt v3
// and its own salt. The owner's export, with changes and revokes in it,
// gives the signed root and the certified tally through the verify code
// path.
func TestChangedAndRevokedReceipts(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	e := newWorkerlessEnv(t, cfg)
	ctx := context.Background()
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_vote_change": true, "bot_policy": "off"}, "A", "B", "C")
	base := "/v1/polls/" + pollID + "/votes"

	// Changer: vote, then change.
	changer, changerID := e.c.Account()
	v1 := e.c.Do("POST", base, changer, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	r1, s1 := receiptOf(t, v1)
	pub := publicKey(t, e, r1.KeyID)
	opens(t, pub, r1, s1, 1, opts[0])
	voteID := v1.Str("vote_id")

	ch := e.c.Do("PUT", base+"/me", changer, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "change-1").Must(t, http.StatusOK)
	r2, s2 := receiptOf(t, ch)
	opens(t, pub, r2, s2, 2, opts[1])
	if r2.VoteID != r1.VoteID || ch.Str("vote_id") != voteID || r2.Commitment == r1.Commitment || s2 == s1 {
		t.Fatalf("change answer: %s (first receipt %+v)", ch.Raw, r1)
	}
	if s, _ := receipt.DecodeSalt(s1); r2.OpenCommitment(s, []id.ID{mustID(opts[1])}) == nil {
		t.Fatal("the first vote's salt opens the changed commitment")
	}
	if row, entry := e.storedCommitments(t, pollID, changerID); !bytes.Equal(row, r2.Commitment[:]) || !bytes.Equal(entry, r2.Commitment[:]) {
		t.Fatalf("stored commitments %x / %x, receipt v2 %x", row, entry, r2.Commitment)
	}
	// A retried change: its own outcome and receipt, no salt.
	again := e.c.Do("PUT", base+"/me", changer, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "change-1").Must(t, http.StatusOK)
	ra, sa := receiptOf(t, again)
	if again.Header.Get("Idempotent-Replayed") != "true" || sa != "" || ra == nil || ra.Commitment != r2.Commitment || ra.BallotVersion != 2 || !bytes.Equal(ra.Signature, r2.Signature) {
		t.Fatalf("retried change: %s", again.Raw)
	}

	if a := e.receiptStatus(t, pollID, voteID, 1, http.StatusOK); a.Status != "superseded" || a.CurrentVersion != 2 || a.Commitment != nil || a.Proof != nil {
		t.Fatalf("v1 after the change: %+v", a)
	}
	for _, v := range []uint32{0, 2} {
		a := e.receiptStatus(t, pollID, voteID, v, http.StatusOK)
		if a.Status != "recorded" || a.CurrentVersion != 2 || a.Commitment == nil || !bytes.Equal(unb64(t, *a.Commitment), r2.Commitment[:]) {
			t.Fatalf("version %d after the change: %+v", v, a)
		}
	}
	e.receiptStatus(t, pollID, voteID, 3, http.StatusNotFound)
	if r := e.c.Do("GET", "/v1/polls/"+pollID+"/receipts/"+voteID+"?version=0", "", nil); r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("version=0: %d %s", r.Status, r.Raw)
	}

	// Revoker: vote, then revoke.
	revoker, revokerID := e.c.Account()
	rv := e.c.Do("POST", base, revoker, map[string]any{"option_id": opts[2]}).Must(t, http.StatusOK)
	revokedVote := rv.Str("vote_id")
	del := e.c.Do("DELETE", base+"/me", revoker, nil).Must(t, http.StatusOK)
	if rr, rs := receiptOf(t, del); rr != nil || rs != "" || del.Str("status") != "revoked" {
		t.Fatalf("revoke answer: %s", del.Raw)
	}
	if row, entry := e.storedCommitments(t, pollID, revokerID); row != nil || entry != nil {
		t.Fatalf("a revoked ballot keeps commitments %x / %x", row, entry)
	}
	for _, v := range []uint32{0, 1, 2} {
		if a := e.receiptStatus(t, pollID, revokedVote, v, http.StatusOK); a.Status != "revoked" || a.CurrentVersion != 2 || a.Commitment != nil {
			t.Fatalf("revoked ballot, version %d: %+v", v, a)
		}
	}

	// Recaster: vote, revoke, vote again: receipt v3 with its own salt,
	// same vote id.
	recaster, _ := e.c.Account()
	c1 := e.c.Do("POST", base, recaster, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	e.c.Do("DELETE", base+"/me", recaster, nil).Must(t, http.StatusOK)
	c3 := e.c.Do("POST", base, recaster, map[string]any{"option_id": opts[2]}).Must(t, http.StatusOK)
	rc3, sc3 := receiptOf(t, c3)
	opens(t, pub, rc3, sc3, 3, opts[2])
	recastVote := c1.Str("vote_id")
	if rc3.VoteID.String() != recastVote {
		t.Fatalf("vote cast again: vote id %s, first %s", rc3.VoteID, recastVote)
	}
	if a := e.receiptStatus(t, pollID, recastVote, 1, http.StatusOK); a.Status != "superseded" || a.CurrentVersion != 3 {
		t.Fatalf("recast, v1: %+v", a)
	}
	if a := e.receiptStatus(t, pollID, recastVote, 3, http.StatusOK); a.Status != "recorded" {
		t.Fatalf("recast, v3: %+v", a)
	}

	// Voters who never change.
	const steady = 5
	for i := range steady {
		tok, _ := e.c.Account()
		e.c.Do("POST", base, tok, map[string]any{"option_id": opts[i%3]}).Must(t, http.StatusOK)
	}
	const current = steady + 2 // the changer and the recaster; not the revoker

	// Close and freeze.
	closeAndRunFinal(t, ctx, e.app, e.c, owner, pollID)
	pid, _ := id.Parse(pollID)
	res, final := e.finalResults(t, owner, pollID)
	cl := res.Certificate.Ledger
	if res.TallyState != "certified" || res.Certificate.Ballots != current || cl.Size != current {
		t.Fatalf("certified results: %s", final)
	}

	// v2 included, with a proof that verifies against the signed head.
	inc := e.receiptStatus(t, pollID, voteID, 2, http.StatusOK)
	if inc.Status != "included" || inc.CurrentVersion != 2 || inc.TreeHead == nil || inc.LeafIndex == nil || inc.TreeHead.Root != cl.Root {
		t.Fatalf("v2 after the freeze: %+v", inc)
	}
	frozenAt, _ := time.Parse(time.RFC3339Nano, inc.TreeHead.FrozenAt)
	head := receipt.TreeHead{PollID: pid, Size: inc.TreeHead.Size, FrozenAt: frozenAt, KeyID: inc.TreeHead.KeyID,
		Sig: unb64(t, inc.TreeHead.Sig)}
	copy(head.Root[:], unb64(t, inc.TreeHead.Root))
	if err := head.VerifyWith(publicKey(t, e, head.KeyID)); err != nil {
		t.Fatalf("signed tree head: %v", err)
	}
	path := make([]ledger.Hash, len(inc.Proof))
	for i, h := range inc.Proof {
		copy(path[i][:], unb64(t, h))
	}
	if err := ledger.VerifyInclusion(*inc.LeafIndex, head.Size, ledger.BallotLeaf(r2.VoteID, r2.Commitment), path, head.Root); err != nil {
		t.Fatalf("v2's inclusion proof: %v", err)
	}
	if ledger.VerifyInclusion(*inc.LeafIndex, head.Size, ledger.BallotLeaf(r1.VoteID, r1.Commitment), path, head.Root) == nil {
		t.Fatal("v1's commitment verifies in the ledger")
	}
	if a := e.receiptStatus(t, pollID, voteID, 1, http.StatusOK); a.Status != "superseded" || a.Proof != nil || a.Commitment != nil {
		t.Fatalf("v1 after the freeze: %+v", a)
	}
	if a := e.receiptStatus(t, pollID, revokedVote, 1, http.StatusOK); a.Status != "revoked" || a.Proof != nil {
		t.Fatalf("revoked after the freeze: %+v", a)
	}
	if a := e.receiptStatus(t, pollID, recastVote, 3, http.StatusOK); a.Status != "included" || a.Proof == nil {
		t.Fatalf("recast v3 after the freeze: %+v", a)
	}

	// The export of a poll with changes and revokes: current ballots only,
	// and it gives the signed root and the certified tally.
	for _, format := range []string{"jsonl", "csv"} {
		exp := e.c.Do("GET", "/v1/polls/"+pollID+"/export?format="+format, owner, nil).Must(t, http.StatusOK)
		if strings.Contains(string(exp.Raw), revokedVote) || strings.Contains(string(exp.Raw), base64.RawURLEncoding.EncodeToString(r1.Commitment[:])) ||
			!strings.Contains(string(exp.Raw), base64.RawURLEncoding.EncodeToString(r2.Commitment[:])) {
			t.Fatalf("%s export: a revoked ballot or a superseded commitment, or not the current one:\n%s", format, exp.Raw)
		}
		rep, err := e.app.VerifyLedger(ctx, pid, bytes.NewReader(exp.Raw))
		if err != nil || !rep.Match || rep.Records != current || rep.Root != cl.Root || !rep.SignatureValid {
			t.Fatalf("%s export: %+v, %v", format, rep, err)
		}
	}
}

// TestChangedReceiptsAsync (async mode, worker in process, receipts on): a
// queued change's 202 carries the vote id and a fresh salt, and the
// request status, once the worker applied it, the v2 receipt that salt
// opens; the route then says v1 superseded. A retried change gets its
// outcome without a salt; a queued revoke's 202 has none, and the
// ballot's receipts then verify as revoked.
func TestChangedReceiptsAsync(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	cfg.Receipt.Enabled = true
	e := newWorkerEnv(t, cfg)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_vote_change": true, "bot_policy": "off"}, "A", "B")
	base := "/v1/polls/" + pollID + "/votes"
	voter, voterID := e.c.Account()
	completed := func(rid string) testenv.Response {
		t.Helper()
		var st testenv.Response
		testenv.Eventually(t, 30*time.Second, func() error {
			st = e.c.Do("GET", base+"/requests/"+rid, voter, nil).Must(t, http.StatusOK)
			if st.Str("state") != "completed" {
				return fmt.Errorf("request %s: %s", rid, st.Raw)
			}
			return nil
		})
		return st
	}

	q1 := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)
	r1, _ := receiptOf(t, completed(q1.Str("request_id")))
	pub := publicKey(t, e, r1.KeyID)
	opens(t, pub, r1, q1.Str("salt"), 1, opts[0])
	voteID := q1.Str("vote_id")

	// The change is refused (409) until the vote is counted; then queued.
	var q2 testenv.Response
	testenv.Eventually(t, 30*time.Second, func() error {
		q2 = e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "async-change")
		if q2.Status != http.StatusAccepted {
			return fmt.Errorf("change: %d %s", q2.Status, q2.Raw)
		}
		return nil
	})
	if q2.Str("vote_id") != voteID || q2.Str("salt") == "" || q2.Str("salt") == q1.Str("salt") {
		t.Fatalf("queued change: %s", q2.Raw)
	}
	st := completed(q2.Str("request_id"))
	r2, salt := receiptOf(t, st)
	if salt != "" {
		t.Fatalf("a request status carries a salt: %s", st.Raw)
	}
	opens(t, pub, r2, q2.Str("salt"), 2, opts[1])
	// The row records the change when the status completes; the worker's
	// follow-ups then settle the index entry.
	testenv.Eventually(t, 30*time.Second, func() error {
		if row, entry := e.storedCommitments(t, pollID, voterID); !bytes.Equal(row, r2.Commitment[:]) || !bytes.Equal(entry, r2.Commitment[:]) {
			return fmt.Errorf("stored commitments %x / %x, receipt v2 %x", row, entry, r2.Commitment)
		}
		return nil
	})
	if a := e.receiptStatus(t, pollID, voteID, 1, http.StatusOK); a.Status != "superseded" || a.CurrentVersion != 2 {
		t.Fatalf("v1 after the queued change: %+v", a)
	}
	if a := e.receiptStatus(t, pollID, voteID, 2, http.StatusOK); a.Status != "recorded" || a.Commitment == nil ||
		!bytes.Equal(unb64(t, *a.Commitment), r2.Commitment[:]) {
		t.Fatalf("v2: %+v", a)
	}
	// Retried once applied: answered from the row, no salt.
	again := e.c.Do("PUT", base+"/me", voter, map[string]any{"option_id": opts[1]}, "Idempotency-Key", "async-change").Must(t, http.StatusOK)
	if _, s := receiptOf(t, again); s != "" || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried change: %s", again.Raw)
	}

	// A queued revoke: no salt; then every receipt is revoked.
	var q3 testenv.Response
	testenv.Eventually(t, 30*time.Second, func() error {
		q3 = e.c.Do("DELETE", base+"/me", voter, nil, "Idempotency-Key", "async-revoke")
		if q3.Status != http.StatusAccepted {
			return fmt.Errorf("revoke: %d %s", q3.Status, q3.Raw)
		}
		return nil
	})
	if q3.Str("salt") != "" {
		t.Fatalf("queued revoke carries a salt: %s", q3.Raw)
	}
	completed(q3.Str("request_id"))
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, v := range []uint32{1, 2} {
			if a := e.receiptStatus(t, pollID, voteID, v, http.StatusOK); a.Status != "revoked" || a.CurrentVersion != 3 {
				return fmt.Errorf("version %d after the revoke: %+v", v, a)
			}
		}
		return nil
	})
}
