//go:build integration

package web_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/web"
)

// One headless Chromium for the whole test binary; each simulated person
// gets a browser context of their own (separate storage, like an incognito
// window), so a test never sees another person's token.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// chromiumPath finds Debian's chromium (TALLY_CHROMIUM overrides). Missing
// under CI=true is a failure: `make test-integration` installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TALLY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium found: install it with `apt-get install -y chromium` (make browser), or set TALLY_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	browser.once.Do(func() {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.NoSandbox, // CI runs as root
			chromedp.WSURLReadTimeout(90*time.Second),
			chromedp.WindowSize(1280, 900),
			chromedp.Flag("disable-gpu", true),
		)
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		browser.ctx = bctx
		browser.cancel = func() { bcancel(); acancel() }
		// The first Run starts the browser; it must not carry a timeout.
		browser.err = chromedp.Do(bctx, chromedp.Navigate("about:blank"))
	})
	if browser.err != nil {
		t.Fatalf("start chromium: %v", browser.err)
	}
	return browser.ctx
}

// person is one browser context: one tab with its own storage.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
}

func newPerson(t *testing.T, name string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(startBrowser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first Run opens the tab and binds it to the context it is given:
	// that must be the person's own, never one with a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	return &person{t: t, name: name, ctx: ctx}
}

func (p *person) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *person) eval(expr string) any {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition (no animation frames needed) until
// it is true, and fails with what the page shows when it never is.
func (p *person) waitFor(what, cond string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		// Errors count as "not yet": the page may be between two documents.
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && v {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: %s: not within %s; page says: %v", p.name, what, timeout,
		p.eval(`document.querySelector('main').innerText`))
}

func (p *person) text(sel string) string {
	p.t.Helper()
	v, _ := p.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel)).(string)
	return strings.TrimSpace(v)
}

func (p *person) typeInto(sel, value string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// serve starts Tally in-process on a port known before the app is built, so
// its public URL is the page's origin (the live socket checks Origin).
func serve(t *testing.T) string {
	t.Helper()
	return serveWith(t, func(*config.Config) {})
}

// serveAsync serves with votes queued through Kafka and the vote worker
// running in-process, as `make run` does.
func serveAsync(t *testing.T) string {
	t.Helper()
	var a *app.App
	base := serveApp(t, func(c *config.Config) { c.Vote.Mode = "async" }, &a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.RunWorker(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return base
}

func serveWith(t *testing.T, adjust func(*config.Config)) string {
	t.Helper()
	return serveApp(t, adjust, nil)
}

func serveApp(t *testing.T, adjust func(*config.Config), out **app.App) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg := testenv.Config(t)
	cfg.PublicURL = base
	adjust(&cfg)
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatalf("build router: %v", err)
	}
	if out != nil {
		*out = a
	}
	srv := httptest.NewUnstartedServer(router)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return base
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TALLY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var seq = time.Now().UnixNano() % 1_000_000

// register creates an account through the page's form and waits until the
// page shows the signed-in view.
func (p *person) register(base string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base + "/"))
	p.fillRegister()
	p.waitFor("signed in", `!document.getElementById('create').hidden`, 15*time.Second)
}

func (p *person) fillRegister() {
	p.t.Helper()
	seq++
	user := fmt.Sprintf("%s_%d", p.name, seq)
	p.typeInto("#reg-email", user+"@example.com")
	p.typeInto("#reg-username", user)
	p.typeInto("#reg-password", "correct-horse-battery")
	p.do(chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
}

// createPoll fills in the create form and returns the share link.
// access is the anonymous access mode, or "" for a poll without anonymous
// votes.
func (p *person) createPoll(title string, options []string, visibility, access string, more ...func()) string {
	p.t.Helper()
	p.typeInto("#c-title", title)
	for i, o := range options {
		if i >= 2 {
			p.do(chromedp.Click(chromedp.CSS("#c-add-option")))
		}
		p.typeInto(fmt.Sprintf("#c-options li:nth-child(%d) input", i+1), o)
	}
	p.eval(fmt.Sprintf(`document.getElementById('c-visibility').value = %q`, visibility))
	if access != "" {
		p.do(chromedp.Click(chromedp.CSS("#c-anon")))
		p.eval(fmt.Sprintf(`document.getElementById('c-access').value = %q`, access))
	}
	for _, f := range more {
		f()
	}
	p.do(chromedp.Click(chromedp.CSS("#create-form button[type=submit]")))
	p.waitFor("share link", `document.getElementById('share-link').value !== ''`, 15*time.Second)
	link, _ := p.eval(`document.getElementById('share-link').value`).(string)
	return link
}

// voteFor clicks the option labelled text and submits.
func (p *person) voteFor(link, text string) {
	p.t.Helper()
	p.do(chromedp.Navigate(link))
	p.waitFor("vote form", `!document.getElementById('vote-form').hidden`, 15*time.Second)
	p.eval(fmt.Sprintf(`Array.from(document.querySelectorAll('#vote-options label')).find(l => l.textContent.trim() === %q).querySelector('input').click()`, text))
	p.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	p.waitFor("own vote shown", fmt.Sprintf(`document.getElementById('my-vote').textContent.includes('“%s”')`, text), 15*time.Second)
	p.waitFor("the results read after the vote", `document.getElementById('vote-form').dataset.state === 'done'`, 15*time.Second)
}

func barCount(text string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll('#results-list li')).find(li => li.querySelector('.bar-label').textContent === %q)`, text)
}

// TestBrowserLiveBars: an owner creates a poll in the page and shares it;
// an anonymous voter and a signed-in voter (keyboard only) vote in their
// own browser contexts; the owner's bars move without a reload; the owner
// closes the poll and every page shows the final tally. Votes go through
// Kafka and the worker (202, then the request's status), as under make
// run. Screenshots at desktop and phone width go to the artifacts directory.
func TestBrowserLiveBars(t *testing.T) {
	base := serveAsync(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Where do we eat on Friday?", []string{"Pizza", "Sushi", "Tacos"}, "always", "open")
	if !strings.HasPrefix(link, base+"/p/") {
		t.Fatalf("share link %q, want it under %s/p/", link, base)
	}
	owner.do(chromedp.Navigate(link))
	owner.waitFor("results shown", `document.getElementById('results-total').textContent === '0 votes'`, 15*time.Second)
	owner.waitFor("owner panel", `!document.getElementById('owner').hidden`, 5*time.Second)
	// The updates must come over the live socket, not the REST fallback.
	owner.waitFor("live socket open", `document.body.dataset.live === 'open'`, 10*time.Second)
	// A marker that a reload would wipe.
	owner.eval(`window.__noReload = 'kept'`)

	anon := newPerson(t, "anon")
	anon.voteFor(link, "Pizza")
	owner.waitFor("the first vote reaches the owner's bars",
		`document.getElementById('results-total').textContent === '1 vote' && `+barCount("Pizza")+`.querySelector('.bar-count').textContent.startsWith('1 vote')`,
		10*time.Second)

	// Keyboard only: Tab to the options, arrow to the second, Tab to the
	// button, Enter.
	// This one opens the link first, follows "Log in", creates an account
	// and is sent back to the poll.
	voter := newPerson(t, "voter")
	voter.do(chromedp.Navigate(link))
	voter.waitFor("log-in link", `!document.getElementById('login-instead').hidden`, 15*time.Second)
	voter.do(chromedp.Click(chromedp.CSS("#login-instead a")))
	voter.waitFor("the log-in page", `!document.getElementById('auth').hidden`, 15*time.Second)
	voter.fillRegister()
	voter.waitFor("back on the poll, signed in", fmt.Sprintf(`location.href === %q && !document.getElementById('who').hidden && `+
		`!document.getElementById('vote-form').hidden && document.getElementById('vote-how').textContent === ''`, link), 15*time.Second)
	for i := 0; ; i++ {
		if v, _ := voter.eval(`document.activeElement && document.activeElement.name === 'choice'`).(bool); v {
			break
		}
		if i > 40 {
			t.Fatalf("Tab never reached an option; focus is on %v", voter.eval(`document.activeElement.outerHTML`))
		}
		voter.do(chromedp.KeyEvent(kb.Tab))
	}
	voter.do(chromedp.KeyEvent(kb.ArrowDown))
	if checked := voter.eval(`document.querySelector('#vote-options input:checked').parentElement.textContent.trim()`); checked != "Sushi" {
		t.Fatalf("ArrowDown checked %v, want Sushi", checked)
	}
	voter.do(chromedp.KeyEvent(kb.Tab))
	if id := voter.eval(`document.activeElement.id`); id != "vote-submit" {
		t.Fatalf("Tab after the options focused %v, want the Vote button", id)
	}
	voter.do(chromedp.KeyEvent(kb.Enter))
	voter.waitFor("own vote shown", `document.getElementById('my-vote').textContent.includes('“Sushi”')`, 15*time.Second)

	owner.waitFor("the second vote reaches the owner's bars",
		`document.getElementById('results-total').textContent === '2 votes' && `+barCount("Sushi")+`.querySelector('.bar-count').textContent.startsWith('1 vote')`,
		10*time.Second)
	if v := voter.eval(`document.activeElement.id`); v != "my-vote" {
		t.Errorf("after a keyboard vote focus is on %v, want the confirmation", v)
	}
	if v := owner.eval(`document.body.dataset.live`); v != "open" {
		t.Errorf("the owner's live socket is %v", v)
	}
	if v := owner.eval(`window.__noReload`); v != "kept" {
		t.Fatalf("the owner's page reloaded (marker %v)", v)
	}
	// The anonymous voter's page moved too, and marks its own choice.
	anon.waitFor("the voter's bars move", `document.getElementById('results-total').textContent === '2 votes'`, 10*time.Second)
	if v, _ := anon.eval(barCount("Pizza") + `.classList.contains('mine')`).(bool); !v {
		t.Error("the anonymous voter's own option is not marked")
	}

	screenshots(t, anon)

	// Close early from the share page (two clicks: ask, then close).
	owner.closePoll()
	owner.waitFor("final tally", `document.getElementById('results-total').textContent === 'Final tally: 2 votes'`, 15*time.Second)
	if s := owner.text("#poll-status"); s != "Closed" {
		t.Errorf("owner's status %q, want Closed", s)
	}
	anon.waitFor("the voter sees the close", `document.getElementById('poll-status').textContent === 'Closed' && document.getElementById('results-total').textContent === 'Final tally: 2 votes'`, 20*time.Second)
	if v, _ := anon.eval(`document.getElementById('vote-form').hidden`).(bool); !v {
		t.Error("the vote form is still shown on a closed poll")
	}

	// My polls lists it as closed.
	owner.do(chromedp.Navigate(base + "/"))
	owner.waitFor("my polls", `Array.from(document.querySelectorAll('#mine-list li')).some(li => li.textContent.includes('Where do we eat on Friday?') && li.querySelector('.badge').textContent === 'closed')`, 15*time.Second)
}

func screenshots(t *testing.T, p *person) {
	t.Helper()
	dir := artifactsDir(t)
	for _, s := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"desktop", 1280, 900, false},
		{"phone", 390, 844, true},
	} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if s.mobile {
			opts = []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch}
		}
		p.do(chromedp.EmulateViewport(s.width, s.height, opts...))
		time.Sleep(300 * time.Millisecond) // the bars' width transition
		if s.mobile {
			if v, _ := p.eval(`document.documentElement.scrollWidth <= window.innerWidth`).(bool); !v {
				t.Errorf("the page scrolls sideways at %d px", s.width)
			}
		}
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot %s: %v", s.name, err)
		}
		path := filepath.Join(dir, "poll-"+s.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	p.do(chromedp.EmulateViewport(1280, 900))
}

// TestBrowserHiddenResults: on an after_close poll a voter sees no numbers
// while it runs (neither over REST nor the socket), and the final tally once
// the owner closes it.
func TestBrowserHiddenResults(t *testing.T) {
	base := serve(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Secret until the end?", []string{"Yes", "No"}, "after_close", "open")

	// Someone who only looks sees no numbers.
	viewer := newPerson(t, "viewer")
	viewer.do(chromedp.Navigate(link))
	viewer.waitFor("results hidden from a viewer", `!document.getElementById('results-hidden').hidden && document.getElementById('results').hidden`, 15*time.Second)

	// Nor does a voter once voted (after_vote would show them).
	voter := newPerson(t, "voter")
	voter.voteFor(link, "No")
	voter.waitFor("results hidden", `!document.getElementById('results-hidden').hidden`, 10*time.Second)
	if v, _ := voter.eval(`document.getElementById('results').hidden && document.getElementById('results-list').children.length === 0`).(bool); !v {
		t.Fatalf("a voter sees results before the close: %q", voter.text("#results"))
	}
	if s := voter.text("#results-hidden"); s != "Results appear when the poll closes." {
		t.Errorf("hidden text %q", s)
	}
	time.Sleep(time.Second) // a live frame, if one leaked, would show now
	if v, _ := voter.eval(`document.getElementById('results').hidden`).(bool); !v {
		t.Fatal("results appeared before the close")
	}

	owner.do(chromedp.Navigate(link))
	owner.waitFor("owner panel", `!document.getElementById('owner').hidden`, 15*time.Second)
	owner.closePoll()
	owner.waitFor("owner's final tally", `document.getElementById('results-total').textContent === 'Final tally: 1 vote'`, 15*time.Second)

	viewer.waitFor("the viewer's final tally", `document.getElementById('results-total').textContent === 'Final tally: 1 vote'`, 20*time.Second)
	voter.waitFor("the voter's final tally", `document.getElementById('results-total').textContent === 'Final tally: 1 vote' && `+
		barCount("No")+`.querySelector('.bar-count').textContent === '1 vote · 100%'`, 20*time.Second)
}

// TestBrowserAnonymousAccess: invite codes minted on the share page let one
// anonymous vote each (a wrong code and a reused one are refused in words),
// and on a proof-of-work poll the browser solves the challenge and votes.
func TestBrowserAnonymousAccess(t *testing.T) {
	base := serveWith(t, func(c *config.Config) { c.AnonAccess.PoWDifficulty = 12 })
	owner := newPerson(t, "owner")
	owner.register(base)
	invite := owner.createPoll("Invited only", []string{"Red", "Blue"}, "always", "invite")
	owner.do(chromedp.Navigate(invite))
	owner.waitFor("mint form", `!document.getElementById('owner').hidden && !document.getElementById('mint-form').hidden`, 15*time.Second)
	owner.eval(`document.getElementById('mint-count').value = '2'`)
	owner.do(chromedp.Click(chromedp.CSS("#mint-form button[type=submit]")))
	// Minting is an owner action: its answer waits for the poll's audit
	// chain entry (an LWT, retried on a lost race), which a loaded CI box
	// has taken longer than 15 s to write once.
	owner.waitFor("codes", `document.getElementById('mint-codes').value.split('\n').length === 2`, 30*time.Second)
	codesText, _ := owner.eval(`document.getElementById('mint-codes').value`).(string)
	code := strings.Split(codesText, "\n")[0]

	guest := newPerson(t, "guest")
	guest.do(chromedp.Navigate(invite))
	guest.waitFor("invite box", `!document.getElementById('invite-box').hidden`, 15*time.Second)
	guest.typeInto("#invite-code", "AAAAAAAAAAAAAAAAAAAAAAAA")
	guest.eval(`document.querySelector('#vote-options input').click()`)
	guest.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	guest.waitFor("a wrong code refused", `document.querySelector('#vote-form [data-error]').textContent === 'That invite code is not valid for this poll.'`, 15*time.Second)
	guest.eval(`document.getElementById('invite-code').value = ''`)
	guest.typeInto("#invite-code", code)
	guest.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	guest.waitFor("own vote shown", `document.getElementById('my-vote').textContent.includes('“Red”')`, 15*time.Second)

	// The same code from someone else: one code, one vote.
	other := newPerson(t, "other")
	other.do(chromedp.Navigate(invite))
	other.waitFor("invite box", `!document.getElementById('invite-box').hidden`, 15*time.Second)
	other.typeInto("#invite-code", code)
	other.eval(`document.querySelectorAll('#vote-options input')[1].click()`)
	other.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	other.waitFor("a reused code refused", `document.querySelector('#vote-form [data-error]').textContent === 'You have already voted in this poll.'`, 15*time.Second)

	owner.do(chromedp.Navigate(base + "/"))
	owner.waitFor("create form", `!document.getElementById('create').hidden`, 15*time.Second)
	pow := owner.createPoll("Prove it", []string{"Tea", "Coffee"}, "always", "pow")
	solver := newPerson(t, "solver")
	solver.voteFor(pow, "Coffee")
	solver.waitFor("results after the vote", `document.getElementById('results-total').textContent === '1 vote'`, 10*time.Second)
}

// TestBrowserErrorMessages runs the page's own error wording in the
// browser: each case is an API error as the page receives it.
func TestBrowserErrorMessages(t *testing.T) {
	base := serveAssets(t)
	p := newPerson(t, "reader")
	p.do(chromedp.Navigate(base + "/"))
	p.waitFor("page", `!document.getElementById('view-home').hidden`, 15*time.Second)
	for _, tc := range []struct{ status, code, message, field, retry, want string }{
		{"409", "ALREADY_VOTED", "", "", "undefined", "You have already voted in this poll."},
		{"409", "POLL_NOT_ACTIVE", "", "", "undefined", "This poll is not open for voting: it has closed or has not started yet."},
		{"403", "RESULTS_HIDDEN", "", "", "undefined", "The results are hidden for now."},
		{"429", "RATE_LIMITED", "", "", "42", "Too many requests. Please try again in 42 s."},
		{"503", "OVERLOADED", "", "", "3", "The server is busy. Please try again in 3 s."},
		{"503", "UNAVAILABLE", "", "", "undefined", "The service is having trouble reaching its storage. Please try again shortly."},
		{"400", "VALIDATION_FAILED", "title: must be 1 to 255 characters", "title", "undefined", "Please check the form: title: must be 1 to 255 characters"},
		{"0", "NETWORK", "network", "", "undefined", "Cannot reach the server. Check your connection and try again."},
		{"418", "HTTP_418", "teapot", "", "undefined", "Request failed (418)."},
	} {
		t.Run(tc.code, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			defer cancel()
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
				`import('/assets/js/api.js').then(m => m.describe(new m.ApiError(%s, %q, %q, %q, %s)))`,
				tc.status, tc.code, tc.message, tc.field, tc.retry), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("describe(%s) = %q, want %q", tc.code, got, tc.want)
			}
		})
	}
}

// serveAssets serves the page alone, for tests that make no API call.
func serveAssets(t *testing.T) string {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := web.Register(r); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBrowserProofOfWorkFallback: the plain-JavaScript SHA-256 used where
// crypto.subtle is missing agrees with Go's on inputs around the padding
// boundaries, and the worker's search with it finds solutions the server
// accepts.
func TestBrowserProofOfWorkFallback(t *testing.T) {
	base := serveAssets(t)
	p := newPerson(t, "hasher")
	p.do(chromedp.Navigate(base + "/"))
	p.waitFor("page", `!document.getElementById('view-home').hidden`, 15*time.Second)
	run := func(expr string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 1000} {
		in := strings.Repeat("aé", n)[:n] // bytes, some of them halves of a UTF-8 é
		got := run(fmt.Sprintf(`import('/assets/js/sha256.js').then(m => Array.from(m.sha256(new Uint8Array(%s)), b => b.toString(16).padStart(2, '0')).join(''))`, jsBytes(in)))
		if want := fmt.Sprintf("%x", sha256.Sum256([]byte(in))); got != want {
			t.Errorf("sha256.js of %d bytes = %s, want %s", n, got, want)
		}
	}
	chal := strings.Repeat("Ab9_-", 16) // 80 characters, as a challenge is
	for _, fallback := range []bool{true, false} {
		sol := run(fmt.Sprintf(`import('/assets/js/pow.js').then(m => m.solve(%q, 10, () => {}, %v))`, chal, fallback))
		if !anonaccess.Solved(chal, sol, 10) {
			t.Errorf("fallback %v: solution %q does not solve the challenge", fallback, sol)
		}
	}
}

func jsBytes(s string) string {
	parts := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		parts[i] = fmt.Sprint(s[i])
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestBrowserMultipleChoice: a poll with a deadline and "choose up to 2";
// choosing three is refused on the page, two are recorded and both shown.
func TestBrowserMultipleChoice(t *testing.T) {
	base := serve(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Which days suit you?", []string{"Monday", "Tuesday", "Wednesday"}, "always", "open", func() {
		owner.do(chromedp.Click(chromedp.CSS("#c-multi")))
		owner.eval(`document.getElementById('c-max').value = '2'`)
		// In two days, at local midnight: datetime-local takes local time.
		owner.eval(`document.getElementById('c-end').value = (() => { const d = new Date(Date.now() + 2 * 864e5); ` +
			`const p = (n) => String(n).padStart(2, '0'); return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T00:00'; })()`)
	})
	voter := newPerson(t, "voter")
	voter.do(chromedp.Navigate(link))
	voter.waitFor("vote form", `!document.getElementById('vote-form').hidden`, 15*time.Second)
	if s := voter.text("#vote-legend"); s != "Choose up to 2" {
		t.Errorf("legend %q", s)
	}
	if v, _ := voter.eval(`(() => { const e = new Date(Date.now() + 2 * 864e5); e.setHours(0, 0, 0, 0); ` +
		`return document.getElementById('poll-deadline').textContent === 'Voting ends ' + e.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'}) + '.'; })()`).(bool); !v {
		t.Errorf("deadline %q is not the one set", voter.text("#poll-deadline"))
	}
	voter.eval(`document.querySelectorAll('#vote-options input').forEach(i => i.click())`)
	voter.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	voter.waitFor("three refused", `document.querySelector('#vote-form [data-error]').textContent === 'Please choose at most 2.'`, 5*time.Second)
	voter.eval(`document.querySelectorAll('#vote-options input')[1].click()`)
	voter.do(chromedp.Click(chromedp.CSS("#vote-submit")))
	voter.waitFor("own votes shown", `document.getElementById('my-vote').textContent === 'You voted for “Monday”, “Wednesday”.'`, 15*time.Second)
	voter.waitFor("results", `document.getElementById('results-total').textContent === '1 vote' && `+
		barCount("Wednesday")+`.querySelector('.bar-count').textContent === '1 vote · 100%'`, 10*time.Second)
	// A sync 200 gives receipt and salt at once; the kept file opens to both days.
	voter.waitFor("receipt panel", `document.getElementById('receipt-kid').textContent.length === 11`, 5*time.Second)
	checkKeptReceipt(t, voter, base, link[strings.LastIndex(link, "/")+1:], "Monday", "Wednesday")
}

// TestBrowserOwnerChangesVisibility: the owner hides the results of a
// running poll from the share page; a viewer's open page stops showing
// numbers (its socket is closed with 4403) and shows them again when the
// owner shows them again, all without a reload.
func TestBrowserOwnerChangesVisibility(t *testing.T) {
	base := serve(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Show or hide?", []string{"Show", "Hide"}, "always", "open")
	viewer := newPerson(t, "viewer")
	viewer.do(chromedp.Navigate(link))
	viewer.waitFor("results and socket", `document.getElementById('results-total').textContent === '0 votes' && document.body.dataset.live === 'open'`, 15*time.Second)
	viewer.eval(`window.__noReload = 'kept'`)

	owner.do(chromedp.Navigate(link))
	owner.waitFor("owner panel", `!document.getElementById('owner').hidden && document.getElementById('vis-select').value === 'always'`, 15*time.Second)
	owner.eval(`document.getElementById('vis-select').value = 'after_vote'`)
	owner.do(chromedp.Click(chromedp.CSS("#vis-form button[type=submit]")))
	owner.waitFor("saved", `document.getElementById('vis-status').textContent === 'Saved.'`, 10*time.Second)

	viewer.waitFor("numbers hidden", `document.getElementById('results').hidden && `+
		`document.getElementById('results-hidden').textContent === 'Results appear once you have voted.'`, 15*time.Second)

	owner.eval(`document.getElementById('vis-select').value = 'always'`)
	owner.do(chromedp.Click(chromedp.CSS("#vis-form button[type=submit]")))
	viewer.waitFor("numbers back", `!document.getElementById('results').hidden && document.getElementById('results-total').textContent === '0 votes'`, 15*time.Second)
	if v := viewer.eval(`window.__noReload`); v != "kept" {
		t.Fatalf("the viewer's page reloaded (marker %v)", v)
	}
}

// TestBrowserOwnerOnly: on an owner_only poll a voter sees why there are no
// numbers, also after the close, while the owner's bars move.
func TestBrowserOwnerOnly(t *testing.T) {
	base := serve(t)
	owner := newPerson(t, "owner")
	owner.register(base)
	link := owner.createPoll("Only for me", []string{"One", "Two"}, "owner_only", "open")
	owner.do(chromedp.Navigate(link))
	owner.waitFor("owner's results", `document.getElementById('results-total').textContent === '0 votes'`, 15*time.Second)

	voter := newPerson(t, "voter")
	voter.voteFor(link, "Two")
	if s := voter.text("#results-hidden"); s != "Only the poll’s owner sees the results." || !voter.eval(`document.getElementById('results').hidden`).(bool) {
		t.Fatalf("voter sees %q (results hidden: %v)", s, voter.eval(`document.getElementById('results').hidden`))
	}
	owner.waitFor("the vote reaches the owner", `document.getElementById('results-total').textContent === '1 vote'`, 10*time.Second)

	owner.closePoll()
	owner.waitFor("owner's final tally", `document.getElementById('results-total').textContent === 'Final tally: 1 vote'`, 15*time.Second)
	voter.waitFor("the voter sees the close", `document.getElementById('poll-status').textContent === 'Closed'`, 20*time.Second)
	if s := voter.text("#results-hidden"); s != "The results are not public." || !voter.eval(`document.getElementById('results').hidden`).(bool) {
		t.Errorf("after the close the voter sees %q", s)
	}
}

// closePoll closes the poll from the share page: a first click asks, a
// second closes. Each click waits for the page's answer to the one before;
// a pointer click sent while live content still moves the layout can land
// beside the button on a loaded machine, so the button is clicked where it
// is (element.click) rather than at coordinates read a moment before.
func (p *person) closePoll() {
	p.t.Helper()
	p.waitFor("the close button", `!document.getElementById('owner-close').hidden && !document.getElementById('owner-close').disabled`, 15*time.Second)
	p.eval(`document.getElementById('owner-close').click(), true`)
	p.waitFor("the close button asking to confirm", `document.getElementById('owner-close').dataset.armed === 'yes'`, 10*time.Second)
	p.eval(`document.getElementById('owner-close').click(), true`)
}
