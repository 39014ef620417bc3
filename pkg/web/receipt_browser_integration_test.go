//go:build integration

package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestBrowserReceipt: an anonymous voter votes through Kafka and the worker
// (a 202 with the salt, the receipt from the request status); the page
// shows "Your receipt" and keeps it in localStorage, where the receipt
// verifies with the served key and the salt opens the commitment to the
// option clicked (and not the other). A reload still shows it; "Check my
// receipt" says recorded, and after the close and the freeze the page
// verifies the inclusion proof and both signatures itself (WebCrypto).
func TestBrowserReceipt(t *testing.T) {
	var a *app.App
	base := serveApp(t, func(c *config.Config) { c.Vote.Mode = "async" }, &a)
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.RunWorker(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Receipts in the page?", []string{"Tea", "Coffee"}, "always", "open")
	pollID := link[strings.LastIndex(link, "/")+1:]

	// Two more ballots, so the proof has a path.
	for i, o := range []string{"Tea", "Tea"} {
		newPerson(t, fmt.Sprintf("other%d", i)).voteFor(link, o)
	}
	voter := newPerson(t, "voter")
	voter.voteFor(link, "Coffee")
	voter.waitFor("the receipt panel with the signed receipt", `!document.getElementById('receipt').hidden && `+
		`document.getElementById('receipt-kid').textContent.length === 11`, 20*time.Second)
	shownVote := voter.text("#receipt-vote")
	if s := voter.text("#receipt h2 ~ p.hint"); !strings.Contains(s, "can see how you voted") {
		t.Errorf("panel sentence %q", s)
	}

	// What the page keeps, checked with pkg/receipt.
	raw, _ := voter.eval(fmt.Sprintf(`localStorage.getItem('tally.receipt.%s')`, pollID)).(string)
	var kept struct {
		Receipt receipt.Receipt `json:"receipt"`
		Salt    string          `json:"salt"`
		Choice  struct {
			OptionIDs []id.ID `json:"option_ids"`
		} `json:"choice"`
	}
	if err := json.Unmarshal([]byte(raw), &kept); err != nil {
		t.Fatalf("localStorage entry %q: %v", raw, err)
	}
	if kept.Receipt.VoteID.String() != shownVote {
		t.Fatalf("panel shows vote %s, kept receipt is %s", shownVote, kept.Receipt.VoteID)
	}
	kr, err := receipt.ParseKeys(testenv.ReceiptSeed)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Verify(&kept.Receipt); err != nil {
		t.Fatalf("kept receipt: %v", err)
	}
	salt, err := receipt.DecodeSalt(kept.Salt)
	if err != nil {
		t.Fatalf("kept salt %q: %v", kept.Salt, err)
	}
	options := pollOptions(t, base, pollID)
	if err := kept.Receipt.OpenCommitment(salt, []id.ID{options["Coffee"]}); err != nil {
		t.Fatalf("the kept salt does not open the commitment to Coffee: %v", err)
	}
	if err := kept.Receipt.OpenCommitment(salt, []id.ID{options["Tea"]}); err == nil {
		t.Fatal("the kept salt opens the commitment to Tea too")
	}
	if len(kept.Choice.OptionIDs) != 1 || kept.Choice.OptionIDs[0] != options["Coffee"] {
		t.Errorf("kept choice %v", kept.Choice.OptionIDs)
	}

	// The download is the same receipt with the salt and the two URLs.
	file := evalAwait(t, voter, `(async () => { let blob; const orig = URL.createObjectURL; `+
		`URL.createObjectURL = (b) => { blob = b; return orig(b); }; `+
		`let name; const click = HTMLAnchorElement.prototype.click; HTMLAnchorElement.prototype.click = function () { name = this.download; }; `+
		`document.getElementById('receipt-download').click(); `+
		`URL.createObjectURL = orig; HTMLAnchorElement.prototype.click = click; return JSON.stringify({name, body: await blob.text()}); })()`)
	var dl struct{ Name, Body string }
	if err := json.Unmarshal([]byte(file), &dl); err != nil {
		t.Fatal(err)
	}
	if want := "tally-receipt-" + pollID + "-" + shownVote + ".json"; dl.Name != want {
		t.Errorf("download name %q, want %q", dl.Name, want)
	}
	var fileBody struct {
		Receipt receipt.Receipt `json:"receipt"`
		Salt    string          `json:"salt"`
		PollURL string          `json:"poll_url"`
		KeysURL string          `json:"keys_url"`
	}
	if err := json.Unmarshal([]byte(dl.Body), &fileBody); err != nil {
		t.Fatalf("downloaded file %q: %v", dl.Body, err)
	}
	if fileBody.Salt != kept.Salt || kr.Verify(&fileBody.Receipt) != nil || fileBody.PollURL != base+"/p/"+pollID ||
		fileBody.KeysURL != base+"/.well-known/tally-receipt-keys" {
		t.Errorf("downloaded file: %s", dl.Body)
	}

	// A reload still shows it; the check says recorded.
	voter.do(chromedp.Reload())
	voter.waitFor("the panel after a reload", `!document.getElementById('receipt').hidden && `+
		fmt.Sprintf(`document.getElementById('receipt-vote').textContent === %q`, shownVote), 15*time.Second)
	// By keyboard, and the answer does not move the page: the panel keeps
	// its height (the status line has room reserved).
	before := voter.eval(`document.getElementById('receipt').getBoundingClientRect().height`)
	voter.eval(`document.getElementById('receipt-check').focus(), true`)
	voter.do(chromedp.KeyEvent(kb.Enter))
	voter.waitFor("recorded", `document.getElementById('receipt-status').dataset.result === 'recorded'`, 10*time.Second)
	if after := voter.eval(`document.getElementById('receipt').getBoundingClientRect().height`); after != before {
		t.Errorf("the check's answer moved the page: panel height %v, then %v", before, after)
	}

	// Close and freeze; the check now verifies the proof in the page.
	owner.do(chromedp.Navigate(link))
	owner.closePoll()
	owner.waitFor("closed", `document.getElementById('poll-status').textContent === 'Closed'`, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := a.Polls.Get(ctx, mustID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatalf("final run: %v", err)
	}
	voter.eval(`document.getElementById('receipt-check').click(), true`)
	voter.waitFor("verified in the page", `['verified', 'failed', 'included'].includes(document.getElementById('receipt-status').dataset.result)`, 15*time.Second)
	if r := voter.eval(`document.getElementById('receipt-status').dataset.result`); r != "verified" {
		t.Fatalf("check after the freeze: %v (%v): %s", r, voter.eval(`document.getElementById('receipt-status').dataset.why || ''`), voter.text("#receipt-status"))
	}
	t.Logf("after the freeze the page says: %s", voter.text("#receipt-status"))
	if after := voter.eval(`document.getElementById('receipt').getBoundingClientRect().height`); after != before {
		t.Errorf("the verified answer moved the page: panel height %v, then %v", before, after)
	}

	// The page's check can fail: a changed signature in the kept receipt.
	voter.eval(fmt.Sprintf(`(() => { const k = 'tally.receipt.%s'; const e = JSON.parse(localStorage.getItem(k)); `+
		`e.receipt.sig = (e.receipt.sig[0] === 'A' ? 'B' : 'A') + e.receipt.sig.slice(1); localStorage.setItem(k, JSON.stringify(e)); return true; })()`, pollID))
	voter.eval(`document.getElementById('receipt-check').click(), true`)
	voter.waitFor("a changed receipt fails in the page", `document.getElementById('receipt-status').dataset.result === 'failed'`, 15*time.Second)
}

// evalAwait evaluates an expression whose promise resolves to a string.
func evalAwait(t *testing.T, p *person, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: eval: %v", p.name, err)
	}
	return v
}

func pollOptions(t *testing.T, base, pollID string) map[string]id.ID {
	t.Helper()
	res, err := http.Get(base + "/v1/polls/" + pollID)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct {
		Options []struct {
			OptionID id.ID  `json:"option_id"`
			Text     string `json:"text"`
		} `json:"options"`
	}
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	out := map[string]id.ID{}
	for _, o := range p.Options {
		out[o.Text] = o.OptionID
	}
	return out
}

func mustID(t *testing.T, s string) id.ID {
	t.Helper()
	v, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkKeptReceipt opens the receipt file the page keeps for the poll with
// the reference verifier: the served key, and the choice of the options
// labelled want (in any order the server stored them).
func checkKeptReceipt(t *testing.T, p *person, base, pollID string, want ...string) {
	t.Helper()
	raw, _ := p.eval(fmt.Sprintf(`localStorage.getItem('tally.receipt.%s')`, pollID)).(string)
	f, err := ledger.ParseReceiptFile([]byte(raw))
	if err != nil {
		t.Fatalf("kept receipt %q: %v", raw, err)
	}
	kr, _ := receipt.ParseKeys(testenv.ReceiptSeed)
	rep := ledger.CheckReceipt(ledger.CheckInput{File: f, Keys: &ledger.KeySet{Keys: kr.JWKs()}})
	if !rep.OK() || rep.Choice == nil {
		t.Fatalf("kept receipt does not verify: %+v", rep.Steps)
	}
	options := pollOptions(t, base, pollID)
	got := map[id.ID]bool{}
	for _, o := range rep.Choice.OptionIDs {
		got[o] = true
	}
	for _, w := range want {
		if !got[options[w]] {
			t.Errorf("the kept receipt opens to %v, without %s", rep.Choice.OptionIDs, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the kept receipt opens to %d options, want %d", len(got), len(want))
	}
}
