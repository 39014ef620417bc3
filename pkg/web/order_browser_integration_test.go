//go:build integration

package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/tally-vote/tally/pkg/testenv"
)

// TestBrowserResultsNeverGoBack: the results read a page makes after its own
// vote races the live socket. Here the race is made certain: the read's
// answer (one vote) is held in the browser until the socket has shown a
// later vote (two), then let through. The page keeps the newer count; the
// socket sends a change once, so bars sent back would stay wrong (CI saw
// "1 vote" for good after both votes).
func TestBrowserResultsNeverGoBack(t *testing.T) {
	base := serve(t)
	c := testenv.NewClient(t, base)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "open",
		"results_visibility": "always"}, "Tea", "Coffee")

	reader := newPerson(t, "reader")
	reader.do(chromedp.Navigate(base + "/p/" + pollID))
	reader.waitFor("bars", `document.getElementById('results-total').textContent === '0 votes' && `+
		`document.querySelectorAll('#results-list li').length === 2`, 15*time.Second)
	reader.waitFor("live socket open", `document.body.dataset.live === 'open'`, 10*time.Second)

	// From here the page's live results reads stop in the browser once
	// answered, until let through.
	tgt := chromedp.FromContext(reader.ctx).Target
	ectx, stop := context.WithCancel(reader.ctx)
	defer stop()
	paused := make(chan fetch.EventRequestPaused, 4)
	events := cdp.Events(ectx, tgt, fetch.RequestPaused)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			paused <- ev
		}
	}()
	call := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(reader.ctx, 10*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	call("enable interception", func(ctx context.Context) error {
		_, err := cdp.Call(ctx, tgt, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "*/v1/polls/" + pollID + "/results?tally=live*", RequestStage: fetch.RequestStageResponse}}})
		return err
	})

	// The reader votes Tea; the page reads the results after the vote.
	reader.eval(`Array.from(document.querySelectorAll('#vote-options label')).find(l => l.textContent.trim() === 'Tea').querySelector('input').click()`)
	reader.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	var held fetch.EventRequestPaused
	select {
	case held = <-paused:
	case <-time.After(15 * time.Second):
		t.Fatal("the page's results read after its vote never came")
	}
	var doc struct {
		Total int64  `json:"total_votes"`
		AsOf  string `json:"as_of"`
	}
	call("read the held answer", func(ctx context.Context) error {
		body, err := cdp.Call(ctx, tgt, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: held.RequestID})
		if err != nil {
			return err
		}
		return json.Unmarshal(body.Body, &doc)
	})
	if doc.Total != 1 {
		t.Fatalf("the held read answered %d votes, want 1 (the reader's own)", doc.Total)
	}

	// A vote from elsewhere reaches the page by its socket meanwhile.
	voter, _ := c.Account()
	c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	reader.waitFor("the socket's newer count", `document.getElementById('results-total').textContent === '2 votes'`, 10*time.Second)

	// The older answer arrives last.
	call("let the held answer through", func(ctx context.Context) error {
		_, err := cdp.Call(ctx, tgt, fetch.ContinueResponse, fetch.ContinueResponseParams{RequestID: held.RequestID})
		return err
	})
	reader.waitFor("the read after the vote handled", `document.getElementById('vote-form').dataset.state === 'done'`, 10*time.Second)
	call("stop interception", func(ctx context.Context) error {
		_, err := cdp.Call(ctx, tgt, fetch.Disable, cdp.Empty{})
		return err
	})
	if got := reader.text("#results-total"); got != "2 votes" {
		t.Fatalf("after the older answer (%d votes as of %s) the page shows %q, want \"2 votes\"", doc.Total, doc.AsOf, got)
	}
	if got := reader.eval(barCount("Coffee") + `.querySelector('.bar-count').textContent`); got != "1 vote · 50%" {
		t.Errorf("Coffee bar %v", got)
	}
}
