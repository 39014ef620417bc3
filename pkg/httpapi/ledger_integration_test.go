//go:build integration

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// receiptAnswer is GET …/receipts/{vote_id} as a client reads it.
type receiptAnswer struct {
	Status     string   `json:"status"`
	Commitment string   `json:"commitment"`
	RecordedAt string   `json:"recorded_at"`
	LeafIndex  *uint64  `json:"leaf_index"`
	TreeSize   *uint64  `json:"tree_size"`
	Proof      []string `json:"proof"`
	TreeHead   *struct {
		PollID   string `json:"poll_id"`
		Size     uint64 `json:"size"`
		Root     string `json:"root"`
		FrozenAt string `json:"frozen_at"`
		KeyID    string `json:"kid"`
		Sig      string `json:"sig"`
	} `json:"tree_head"`
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q is not base64url: %v", s, err)
	}
	return b
}

// TestLedgerRoundTrip is issue 23's "ledger round trip": 1,000 ballots
// voted through the real API, the poll closed and its final tally frozen
// with its ledger; the owner's export, checked by the verify code path,
// gives the signed root and the certified tally, and one changed byte of
// it does not. A receipt's proof from the public route verifies against
// the signed head with the key from the well-known list, and a re-run of
// the final reproduces the root.
func TestLedgerRoundTrip(t *testing.T) {
	const ballots = 1000
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	e := newWorkerlessEnv(t, cfg)
	ctx := context.Background()
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"bot_policy": "off"}, "A", "B", "C")
	votes := "/v1/polls/" + pollID + "/votes"

	var (
		mu       sync.Mutex
		voteIDs  = map[string]string{} // vote id → option
		receipts = map[string]receipt.Receipt{}
		salts    = map[string]string{}
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	began := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tok := accountToken(t, e.c)
				o := opts[i%len(opts)]
				r := e.c.Do("POST", votes, tok, map[string]any{"option_id": o})
				if r.Status != http.StatusOK {
					t.Errorf("vote %d: %d %s", i, r.Status, r.Raw)
					continue
				}
				var ans struct {
					Receipt receipt.Receipt `json:"receipt"`
					Salt    string          `json:"salt"`
				}
				if err := json.Unmarshal(r.Raw, &ans); err != nil {
					t.Errorf("vote %d answer: %v", i, err)
					continue
				}
				mu.Lock()
				voteIDs[r.Str("vote_id")] = o
				receipts[r.Str("vote_id")], salts[r.Str("vote_id")] = ans.Receipt, ans.Salt
				mu.Unlock()
			}
		}()
	}
	for i := range ballots {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() || len(voteIDs) != ballots {
		t.Fatalf("%d ballots recorded, want %d", len(voteIDs), ballots)
	}
	t.Logf("voted %d ballots in %v", ballots, time.Since(began).Round(time.Millisecond))
	var someVote string
	for v := range voteIDs {
		someVote = v
		break
	}
	receiptPath := "/v1/polls/" + pollID + "/receipts/"

	// Before the freeze: recorded, with the stored commitment, to anyone.
	before := e.c.Do("GET", receiptPath+someVote, "", nil).Must(t, http.StatusOK)
	var rec receiptAnswer
	_ = json.Unmarshal(before.Raw, &rec)
	pid, _ := id.Parse(pollID)
	var stored []byte
	vid, _ := id.Parse(someVote)
	if err := e.app.CQL.Session.Query(`SELECT commitment FROM votes WHERE poll_id = ? AND vote_id = ? ALLOW FILTERING`, pid, vid).
		Scan(&stored); err != nil || len(stored) != 32 {
		t.Fatalf("stored commitment: %x, %v", stored, err)
	}
	if rec.Status != "recorded" || !bytes.Equal(unb64(t, rec.Commitment), stored) || rec.Proof != nil || rec.RecordedAt == "" {
		t.Fatalf("receipt before the freeze: %s", before.Raw)
	}
	if r := e.c.Do("GET", receiptPath+id.New().String(), "", nil); r.Status != http.StatusNotFound || r.Code() != "NOT_FOUND" {
		t.Fatalf("unknown vote id: %d %s", r.Status, r.Raw)
	}
	if r := e.c.Do("GET", receiptPath+"not-a-uuid", "", nil); r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("malformed vote id: %d %s", r.Status, r.Raw)
	}

	// Close and freeze.
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	p, err := e.app.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	buildBefore := metricSum(t, e, "tally_ledger_build_seconds")
	began = time.Now()
	if _, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatalf("final run: %v", err)
	}
	t.Logf("final run with the ledger of %d ballots: %v (ledger read, cross-check and tree: %.0f ms)",
		ballots, time.Since(began).Round(time.Millisecond), (metricSum(t, e, "tally_ledger_build_seconds")-buildBefore)*1000)

	res, final := e.finalResults(t, owner, pollID)
	cl := res.Certificate.Ledger
	if res.TallyState != "certified" || res.Certificate.Ballots != ballots || cl.Size != ballots || len(unb64(t, cl.Root)) != 32 ||
		cl.KeyID == "" || len(unb64(t, cl.Signature)) != 64 {
		t.Fatalf("certified results: %s", final)
	}

	// The owner's export, through the verify code path.
	for _, format := range []string{"jsonl", "csv"} {
		exp := e.c.Do("GET", "/v1/polls/"+pollID+"/export?format="+format, owner, nil).Must(t, http.StatusOK)
		if strings.Contains(string(exp.Raw), "salt") {
			t.Fatalf("%s export mentions a salt", format)
		}
		rep, err := e.app.VerifyLedger(ctx, pid, bytes.NewReader(exp.Raw))
		if err != nil || !rep.Match || rep.Records != ballots || rep.Root != cl.Root || !rep.SignatureValid {
			t.Fatalf("%s export: %+v, %v", format, rep, err)
		}
		// One byte of one ballot's commitment changed: the root differs.
		i := bytes.Index(exp.Raw, []byte(rec.Commitment))
		if i < 0 {
			t.Fatalf("%s export lacks the receipt's commitment", format)
		}
		bad := bytes.Clone(exp.Raw)
		bad[i+10] = flipB64(bad[i+10])
		rep, err = e.app.VerifyLedger(ctx, pid, bytes.NewReader(bad))
		if err == nil && (rep.Match || rep.RootMatches) {
			t.Fatalf("%s export with a changed commitment byte matched: %+v", format, rep)
		}
		// One byte of an option id changed: a malformed id, or another
		// option's count.
		j := bytes.Index(exp.Raw, []byte(voteIDs[someVote]))
		bad = bytes.Clone(exp.Raw)
		bad[j] = map[bool]byte{true: '1', false: '0'}[bad[j] == '0']
		rep, err = e.app.VerifyLedger(ctx, pid, bytes.NewReader(bad))
		if err == nil && (rep.Match || rep.TallyMatches) {
			t.Fatalf("%s export with a changed option byte matched: %+v", format, rep)
		}
	}

	// After the freeze: included, with a proof that verifies against the
	// signed head with the published key and nothing else: the voter's
	// receipt (its signature, its commitment opened by the salt), the
	// route's answer and the key.
	after := e.c.Do("GET", receiptPath+someVote, "", nil).Must(t, http.StatusOK)
	var inc receiptAnswer
	if err := json.Unmarshal(after.Raw, &inc); err != nil {
		t.Fatal(err)
	}
	if inc.Status != "included" || inc.LeafIndex == nil || inc.TreeSize == nil || *inc.TreeSize != ballots || inc.TreeHead == nil ||
		inc.TreeHead.Root != cl.Root {
		t.Fatalf("receipt after the freeze: %s", after.Raw)
	}
	var set struct{ Keys []receipt.JWK }
	_ = json.Unmarshal(e.c.Do("GET", "/.well-known/tally-receipt-keys", "", nil).Must(t, http.StatusOK).Raw, &set)
	var pub []byte
	for _, k := range set.Keys {
		if k.KeyID == inc.TreeHead.KeyID {
			if pub, err = receipt.PublicKeyFromJWK(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	frozenAt, _ := time.Parse(time.RFC3339Nano, inc.TreeHead.FrozenAt)
	head := receipt.TreeHead{PollID: pid, Size: inc.TreeHead.Size, FrozenAt: frozenAt, KeyID: inc.TreeHead.KeyID,
		Sig: unb64(t, inc.TreeHead.Sig)}
	copy(head.Root[:], unb64(t, inc.TreeHead.Root))
	if err := head.VerifyWith(pub); err != nil {
		t.Fatalf("signed tree head: %v", err)
	}
	r := receipts[someVote]
	if err := r.VerifyWith(pub); err != nil {
		t.Fatalf("the vote's receipt: %v", err)
	}
	salt, err := receipt.DecodeSalt(salts[someVote])
	if err != nil {
		t.Fatal(err)
	}
	optID, _ := id.Parse(voteIDs[someVote])
	if err := r.OpenCommitment(salt, []id.ID{optID}); err != nil {
		t.Fatalf("the salt does not open the receipt: %v", err)
	}
	path := make([]ledger.Hash, len(inc.Proof))
	for i, h := range inc.Proof {
		copy(path[i][:], unb64(t, h))
	}
	if b64 := base64.RawURLEncoding.EncodeToString(r.Commitment[:]); b64 != inc.Commitment {
		t.Fatalf("route commitment %s, receipt's %s", inc.Commitment, b64)
	}
	if err := ledger.VerifyInclusion(*inc.LeafIndex, head.Size, ledger.BallotLeaf(r.VoteID, r.Commitment), path, head.Root); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	path[0][0] ^= 1
	if err := ledger.VerifyInclusion(*inc.LeafIndex, head.Size, ledger.BallotLeaf(r.VoteID, r.Commitment), path, head.Root); err == nil {
		t.Fatal("a changed proof verified")
	}

	// A re-run of the final reproduces the root and keeps the frozen head.
	if _, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatalf("final re-run: %v", err)
	}
	again := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil).Must(t, http.StatusOK)
	_ = json.Unmarshal(again.Raw, &res)
	if res.Certificate.Ledger != cl {
		t.Fatalf("after a re-run: %+v, want %+v", res.Certificate.Ledger, cl)
	}
	if n := metric(t, e.app.Registry, "tally_ledger_builds_total", "result", "frozen"); n != 2 {
		t.Fatalf("tally_ledger_builds_total{frozen} = %v, want 2", n)
	}
}

// flipB64 changes one base64url letter into another.
func flipB64(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// accountToken registers an account without failing the test from a
// goroutine that is not the test's.
func accountToken(t *testing.T, c *testenv.Client) string {
	name := "u_" + strings.ReplaceAll(id.New().String()[:18], "-", "")
	c.Do("POST", "/v1/auth/register", "", map[string]any{"email": name + "@example.test", "username": name,
		"password": "correct horse battery"})
	r := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "correct horse battery"})
	if r.Status != http.StatusOK {
		t.Errorf("login: %d %s", r.Status, r.Raw)
	}
	return r.Str("access_token")
}

// metricSum is a histogram's sum of observations.
func metricSum(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.app.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if m.Histogram != nil {
					return m.Histogram.GetSampleSum()
				}
			}
		}
	}
	return 0
}

func newWorkerlessEnv(t *testing.T, cfg config.Config) *env {
	t.Helper()
	a, srv := testenv.Server(t, cfg)
	return &env{app: a, c: testenv.NewClient(t, srv.URL)}
}

// closeAndRunFinal closes the owner's poll through c and runs its final
// reconciliation in a itself, which freezes the tally of record (and its
// ledger); closeAndFreeze instead waits for the worker's finalizer.
func closeAndRunFinal(t *testing.T, ctx context.Context, a *app.App, c *testenv.Client, owner, pollID string) {
	t.Helper()
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	p, err := a.Polls.Get(ctx, mustUUID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatalf("final run: %v", err)
	}
}

// certifiedResults is the part of GET …/results?tally=final the ledger
// tests read.
type certifiedResults struct {
	TallyState  string `json:"tally_state"`
	Certificate struct {
		Ballots int64            `json:"ballots"`
		Ledger  tally.CertLedger `json:"ledger"`
	} `json:"certificate"`
}

// finalResults reads the owner's tally=final results (200), decoded, and
// the raw answer for a failure's message.
func (e *env) finalResults(t *testing.T, owner, pollID string) (certifiedResults, []byte) {
	t.Helper()
	final := e.c.Do("GET", "/v1/polls/"+pollID+"/results?tally=final", owner, nil).Must(t, http.StatusOK)
	var res certifiedResults
	if err := json.Unmarshal(final.Raw, &res); err != nil {
		t.Fatal(err)
	}
	return res, final.Raw
}

// TestLedgerRefusesIndexThatDisagreesWithRows: a ballot whose vote row's
// commitment no longer matches its index row (changed in Cassandra behind
// Tally's back) makes the final run refuse: nothing is frozen, the refusal
// is counted, and once the row is put back the run certifies.
func TestLedgerRefusesIndexThatDisagreesWithRows(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Receipt.Enabled = true
	e := newWorkerlessEnv(t, cfg)
	ctx := context.Background()
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"bot_policy": "off"}, "A", "B")
	var voter string
	for i := range 5 {
		tok, uid := e.c.Account()
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[i%2]}).Must(t, http.StatusOK)
		voter = uid
	}
	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voter)
	var was []byte
	if err := e.app.CQL.Session.Query(`SELECT commitment FROM votes WHERE poll_id = ? AND voter_id = ?`, pid, vid).Scan(&was); err != nil || len(was) != 32 {
		t.Fatalf("stored commitment %x: %v", was, err)
	}
	forged := bytes.Repeat([]byte{7}, 32)
	if err := e.app.CQL.Session.Query(`UPDATE votes SET commitment = ? WHERE poll_id = ? AND voter_id = ?`, forged, pid, vid).Exec(); err != nil {
		t.Fatal(err)
	}
	p, err := e.app.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); !errors.Is(err, tally.ErrLedgerRows) {
		t.Fatalf("final run over a forged row: %v, want ErrLedgerRows", err)
	}
	var n int
	if err := e.app.CQL.Session.Query(`SELECT COUNT(*) FROM final_tallies WHERE poll_id = ?`, pid).Scan(&n); err != nil || n != 0 {
		t.Fatalf("final_tallies rows after a refusal: %d, %v", n, err)
	}
	if got := metric(t, e.app.Registry, "tally_ledger_builds_total", "result", "refused_rows"); got != 1 {
		t.Fatalf("refused_rows = %v, want 1", got)
	}
	if err := e.app.CQL.Session.Query(`UPDATE votes SET commitment = ? WHERE poll_id = ? AND voter_id = ?`, was, pid, vid).Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatalf("final run once the row is back: %v", err)
	}
	if res, final := e.finalResults(t, owner, pollID); res.TallyState != "certified" || res.Certificate.Ledger.Size != 5 {
		t.Fatalf("after the row is back: %s", final)
	}
}

// TestReceiptProofFollowsResultsVisibility: on an owner_only poll the tree
// size (the ballot count) is the owner's to see. After the freeze anyone
// learns the ballot is included, only the owner gets the proof.
func TestReceiptProofFollowsResultsVisibility(t *testing.T) {
	e := newWorkerlessEnv(t, testenv.Config(t))
	ctx := context.Background()
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"bot_policy": "off", "results_visibility": "owner_only"}, "A", "B")
	voter, _ := e.c.Account()
	voteID := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}).
		Must(t, http.StatusOK).Str("vote_id")
	closeAndRunFinal(t, ctx, e.app, e.c, owner, pollID)
	path := "/v1/polls/" + pollID + "/receipts/" + voteID
	for _, who := range []struct{ name, token string }{{"anyone", ""}, {"the voter", voter}} {
		r := e.c.Do("GET", path, who.token, nil).Must(t, http.StatusOK)
		if r.Str("status") != "included" || r.Str("proof_withheld") != "results_hidden" || r.Body["tree_size"] != nil ||
			r.Body["tree_head"] != nil || r.Body["proof"] != nil {
			t.Fatalf("%s: %s", who.name, r.Raw)
		}
	}
	r := e.c.Do("GET", path, owner, nil).Must(t, http.StatusOK)
	if r.Str("status") != "included" || r.Body["tree_size"] != float64(1) || r.Body["tree_head"] == nil {
		t.Fatalf("owner: %s", r.Raw)
	}
}
