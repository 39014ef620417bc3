//go:build integration

package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/testenv"
)

// pathLog counts the requests Tally answered, by path: what a framed
// document did, seen from the server.
type pathLog struct {
	mu   sync.Mutex
	hits []string
}

func (l *pathLog) add(p string) {
	l.mu.Lock()
	l.hits = append(l.hits, p)
	l.mu.Unlock()
}

// count is how many requests had a path starting with prefix.
func (l *pathLog) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, h := range l.hits {
		if strings.HasPrefix(h, prefix) {
			n++
		}
	}
	return n
}

// serveLogged serves Tally as serveApp does, logging each request's path.
func serveLogged(t *testing.T) (string, *pathLog) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg := testenv.Config(t)
	cfg.PublicURL = base
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatalf("build router: %v", err)
	}
	log := &pathLog{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r.URL.Path)
		router.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return base, log
}

// parentSite serves, on host (a loopback address), a page of another site
// that frames tally's widget of the poll its ?poll= names. It returns the
// site's origin.
func parentSite(t *testing.T, host, tally string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>A blog</title><h1>A blog post</h1>`+
			`<iframe id="tally" src="%s/embed/%s" title="Tally poll" width="420" height="520"></iframe>`,
			tally, r.URL.Query().Get("poll"))
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "http://" + l.Addr().String()
}

// frameOf attaches to the widget's frame in p's tab: a frame of another site
// is a target of its own (site isolation), which the page's DOM does not
// reach.
func (p *person) frameOf(url string) *person {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(p.ctx)
		if err != nil {
			p.t.Fatalf("targets: %v", err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && info.URL == url {
				ctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(info.TargetID))
				p.t.Cleanup(cancel)
				// The first Run attaches to the frame and binds it to the
				// context it is given: never one with a timeout.
				if _, err := chromedp.Run(ctx, chromedp.Evaluate[any]("1")); err != nil {
					p.t.Fatalf("%s: attach to the frame: %v", p.name, err)
				}
				return &person{t: p.t, name: p.name + "'s frame", ctx: ctx}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: no frame loaded %s", p.name, url)
	return nil
}

// TestBrowserEmbed: a page on a site the poll lists frames the widget, which
// shows the live bars and takes an anonymous vote; a site the poll does not
// list, and any site for a poll that lists none, gets the widget's document
// refused by the browser: it never runs, so it never reads its poll.
func TestBrowserEmbed(t *testing.T) {
	base, hits := serveLogged(t)
	// 127.0.0.2 is another site than Tally's 127.0.0.1; the unlisted page
	// is on Tally's host at another port, so another origin of the same
	// site (the closest a stranger's page can get).
	listed := parentSite(t, "127.0.0.2", base)
	unlisted := parentSite(t, "127.0.0.1", base)

	c := testenv.NewClient(t, base)
	owner, _ := c.Account()
	open := map[string]any{"allow_anonymous": true, "anonymous_access": "open", "results_visibility": "always",
		"embed_origins": []string{listed, "https://blog.example.com"}}
	framed, opts := c.Poll(owner, open, "Tea", "Coffee")
	notListed, _ := c.Poll(owner, open, "Tea", "Coffee")
	none, _ := c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "open"}, "Tea", "Coffee")

	reader := newPerson(t, "reader")
	consoleCtx, stopConsole := context.WithCancel(reader.ctx)
	defer stopConsole()
	messages := chromedp.Console(consoleCtx)
	reader.do(chromedp.Navigate(listed + "/?poll=" + framed))
	frame := reader.frameOf(base + "/embed/" + framed)
	frame.waitFor("bars in the frame", `document.getElementById('results-total').textContent === '0 votes' && `+
		`document.querySelectorAll('#results-list li').length === 2`, 15*time.Second)
	frame.waitFor("live socket open in the frame", `document.body.dataset.live === 'open'`, 10*time.Second)

	// A vote from elsewhere moves the framed bars.
	voter, _ := c.Account()
	c.Do("POST", "/v1/polls/"+framed+"/votes", voter, map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	frame.waitFor("the framed bars move", `document.getElementById('results-total').textContent === '1 vote' && `+
		barCount("Coffee")+`.querySelector('.bar-count').textContent === '1 vote · 100%'`, 10*time.Second)

	// The frame votes, anonymously (it signs nobody in).
	frame.eval(`Array.from(document.querySelectorAll('#vote-options label')).find(l => l.textContent.trim() === 'Tea').querySelector('input').click()`)
	frame.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	frame.waitFor("own vote shown in the frame", `document.getElementById('my-vote').textContent.includes('“Tea”')`, 15*time.Second)
	frame.waitFor("both votes in the frame", `document.getElementById('results-total').textContent === '2 votes'`, 10*time.Second)
	if total, _ := c.Results(owner, framed, "live"); total != 2 {
		t.Fatalf("results after the framed vote: %d votes, want 2", total)
	}
	if got := frame.eval(`document.getElementById('embed-open').href`); got != base+"/p/"+framed {
		t.Errorf("open link %v", got)
	}

	// Refused: the unlisted site for a poll listing others, the listed site
	// for a poll listing none. Tally answers the document; the browser
	// never lets it run, so it never reads its poll.
	for _, tc := range []struct{ parent, pollID string }{{unlisted, notListed}, {listed, none}} {
		before := hits.count("/embed/" + tc.pollID)
		reader.do(chromedp.Navigate(tc.parent + "/?poll=" + tc.pollID))
		deadline := time.Now().Add(10 * time.Second)
		for hits.count("/embed/"+tc.pollID) == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s never asked for /embed/%s", tc.parent, tc.pollID)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // what a loaded widget would have read by now
		if n := hits.count("/v1/polls/" + tc.pollID); n != 0 {
			t.Errorf("%s framed the widget of %s: it made %d API requests", tc.parent, tc.pollID, n)
		}
	}

	// Chromium says why in the console of the page that tried.
	refusals := 0
	time.AfterFunc(5*time.Second, stopConsole)
	for m, err := range messages {
		if err != nil {
			break
		}
		if strings.Contains(m.Text, "frame-ancestors") {
			t.Logf("console: %s", m.Text)
			refusals++
			if refusals == 2 {
				break
			}
		}
	}
	if refusals != 2 {
		t.Errorf("%d frame-ancestors refusals in the console, want 2", refusals)
	}
}

// TestBrowserOwnerEmbedSites: the owner lists the sites on the share page,
// is told in words when one is not an origin, and gets the iframe code;
// the widget's header then names the sites.
func TestBrowserOwnerEmbedSites(t *testing.T) {
	base := serve(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Embed me?", []string{"Yes", "No"}, "always", "open")
	pollID := strings.TrimPrefix(link, base+"/p/")
	owner.do(chromedp.Navigate(link))
	owner.waitFor("owner panel", `!document.getElementById('owner').hidden`, 15*time.Second)
	if v := owner.eval(`document.getElementById('embed-origins').value`); v != "" {
		t.Fatalf("a new poll lists %q", v)
	}

	owner.typeInto("#embed-origins", "https://blog.example.com/post-1")
	owner.do(chromedp.Click(chromedp.CSS("#embed-form button[type=submit]")))
	owner.waitFor("the refusal in words", `document.querySelector('#owner [data-error]').textContent.startsWith('Please check the form: ')`, 10*time.Second)

	owner.eval(`document.getElementById('embed-origins').value = 'https://blog.example.com\nhttp://localhost:3000'`)
	owner.do(chromedp.Click(chromedp.CSS("#embed-form button[type=submit]")))
	owner.waitFor("saved", `document.getElementById('embed-status').textContent === 'Saved.'`, 10*time.Second)
	if v := owner.text("#owner [data-error]"); v != "" {
		t.Errorf("error left on screen: %q", v)
	}
	code, _ := owner.eval(`document.getElementById('embed-code').value`).(string)
	if !strings.Contains(code, `<iframe src="`+base+`/embed/`+pollID+`"`) {
		t.Errorf("embed code %q", code)
	}

	r := testenv.NewClient(t, base).Do("GET", "/embed/"+pollID, "", nil)
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors https://blog.example.com http://localhost:3000;") {
		t.Fatalf("widget CSP %q", csp)
	}
	// After a reload the panel shows what is stored.
	owner.do(chromedp.Navigate(link))
	owner.waitFor("the stored sites", `document.getElementById('embed-origins').value === 'https://blog.example.com\nhttp://localhost:3000'`, 15*time.Second)
}
