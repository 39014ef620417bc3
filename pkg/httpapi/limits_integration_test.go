//go:build integration

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/testenv"
)

// limitsEnv serves the real router through the real http.Server settings
// (httpapi.NewServer), as `tally serve` does, on an ephemeral port.
type limitsEnv struct {
	app *app.App
	c   *testenv.Client
	cfg config.Config
	url string
}

func newLimitsEnv(t *testing.T, mod func(*config.Config)) *limitsEnv {
	t.Helper()
	cfg := testenv.Config(t)
	if mod != nil {
		mod(&cfg)
	}
	return serveLimits(t, cfg)
}

// serveLimits serves cfg as newLimitsEnv does: a second process on the
// same stack when cfg is another env's.
func serveLimits(t *testing.T, cfg config.Config) *limitsEnv {
	t.Helper()
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatalf("build router: %v", err)
	}
	srv := httptest.NewUnstartedServer(router)
	srv.Config = httpapi.NewServer(cfg.HTTP, "", router)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		a.Close()
	})
	return &limitsEnv{app: a, c: testenv.NewClient(t, srv.URL), cfg: cfg, url: srv.URL}
}

// metric reads one sample from the app's registry (0 when absent).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func TestServerCutsASlowBody(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) {
		c.HTTP.ReadHeaderTimeout = time.Second
		c.HTTP.ReadTimeout = time.Second
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A 1,000-byte body announced, then one byte every 50 ms: 50 s to send.
	fmt.Fprintf(conn, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	start := time.Now()
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 1000; n++ {
			if _, err := conn.Write([]byte(" ")); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		sent <- n
	}()
	// The server must give up on the request within a few seconds: it
	// answers and/or closes the connection.
	_ = conn.SetReadDeadline(time.Now().Add(6 * time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v of a trickled body", time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the server held a trickled body for %v", took)
	}
	_ = conn.Close()
	if n := <-sent; n >= 1000 {
		t.Fatalf("the whole body was accepted (%d bytes)", n)
	}
}

func TestServerClosesIdleConnections(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.HTTP.IdleTimeout = 500 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	rd := bufio.NewReader(conn)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = rd.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("an idle kept-alive connection stayed open")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("idle connection closed after %v", took)
	}
}

func TestServerRefusesOversizedHeaders(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.HTTP.MaxHeaderBytes = 4 << 10 })
	r := e.c.Do("GET", "/healthz", "", nil, "X-Padding", strings.Repeat("a", 32<<10))
	if r.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 KiB of headers with a 4 KiB cap: %d", r.Status)
	}
	e.c.Do("GET", "/healthz", "", nil, "X-Padding", strings.Repeat("a", 1<<10)).Must(t, http.StatusOK)
}

// wsURL is the live socket URL of a poll.
func (e *limitsEnv) wsURL(pollID, token string) string {
	u := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/polls/" + pollID + "/live"
	if token != "" {
		u += "?access_token=" + token
	}
	return u
}

// refusal dials and expects the handshake to be refused with status and
// the envelope's code.
func refusal(t *testing.T, url string, h http.Header, status int, code string) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err == nil {
		conn.Close()
		t.Fatalf("handshake accepted, want %d %s", status, code)
	}
	if resp == nil || resp.StatusCode != status {
		t.Fatalf("handshake: %v, want %d", err, status)
	}
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Error.Code != code {
		t.Fatalf("body: %+v %v, want %s", env, err, code)
	}
	if (status == 429 || status == 503) && resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func from(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

func TestLiveSocketCaps(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) {
		// The test's requests all come from 127.0.0.1; as a trusted proxy it
		// may say which client each socket is for.
		c.TrustedProxies = []string{"127.0.0.1"}
		c.HTTP.LiveMaxPerIP = 2
		c.HTTP.LiveMaxTotal = 3
	})
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	u := e.wsURL(pollID, "")

	a1 := dial(t, u, from("198.51.100.1"))
	dial(t, u, from("198.51.100.1"))
	refusal(t, u, from("198.51.100.1"), http.StatusTooManyRequests, "RATE_LIMITED")
	dial(t, u, from("198.51.100.2"))
	refusal(t, u, from("198.51.100.3"), http.StatusServiceUnavailable, "UNAVAILABLE")

	// A socket that ends gives its slot back.
	a1.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		conn, _, err := websocket.DefaultDialer.Dial(u, from("198.51.100.3"))
		if err != nil {
			return err
		}
		conn.Close()
		return nil
	})
	if n := metric(t, e.app.Registry, "tally_live_refused_total", "reason", "per_ip"); n != 1 {
		t.Fatalf("per_ip refusals %v", n)
	}
	if n := metric(t, e.app.Registry, "tally_live_refused_total", "reason", "total"); n < 1 {
		t.Fatalf("total refusals %v", n)
	}
}

func TestLiveOriginPolicy(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"https://app.example"} })
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	u := e.wsURL(pollID, owner)
	refusal(t, u, http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, "FORBIDDEN")
	refusal(t, u, http.Header{"Origin": {"null"}}, http.StatusForbidden, "FORBIDDEN")
	dial(t, u, http.Header{"Origin": {e.cfg.PublicURL}}) // same origin as the public URL
	dial(t, u, http.Header{"Origin": {"https://app.example"}})
	dial(t, u, nil) // not a browser: no Origin
	if n := metric(t, e.app.Registry, "tally_live_refused_total", "reason", "origin"); n != 2 {
		t.Fatalf("origin refusals %v", n)
	}
}

// closeCode reads until the server closes the socket and returns the close
// code, failing after wait.
func closeCode(t *testing.T, conn *websocket.Conn, wait time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("socket not closed by the server: %v", err)
	}
}

func TestLiveSocketClosedWhenResultsHidden(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.HTTP.LiveRecheck = 200 * time.Millisecond })
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	outsider, _ := e.c.Account()
	voter, _ := e.c.Account()
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	watching := dial(t, e.wsURL(pollID, outsider), nil)
	voted := dial(t, e.wsURL(pollID, voter), nil)

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": map[string]any{"show_results_during_voting": false}}).
		Must(t, http.StatusOK)
	if code := closeCode(t, watching, 5*time.Second); code != 4403 {
		t.Fatalf("close code %d, want 4403", code)
	}
	// Whoever voted still sees the results: that socket stays open.
	_ = voted.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := voted.ReadMessage(); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("the voter's socket ended: %v", err)
			}
			break
		}
	}
	if n := metric(t, e.app.Registry, "tally_live_dropped_total", "reason", "results_hidden"); n != 1 {
		t.Fatalf("results_hidden drops %v", n)
	}
}

func TestLiveSocketClosedWhenTokenExpires(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) { c.Auth.TokenTTL = 1500 * time.Millisecond })
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	conn := dial(t, e.wsURL(pollID, owner), nil)
	start := time.Now()
	if code := closeCode(t, conn, 6*time.Second); code != 4401 {
		t.Fatalf("close code %d, want 4401", code)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("closed %v after opening with a 1.5 s token", took)
	}
	if n := metric(t, e.app.Registry, "tally_live_dropped_total", "reason", "token_expired"); n != 1 {
		t.Fatalf("token_expired drops %v", n)
	}
}

// A client that stops reading is dropped while the poll keeps changing;
// it does not hold its socket (nor a hub slot) forever.
func TestLiveSlowConsumerDropped(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) {
		c.HTTP.LiveSendBuffer = 4096
		c.HTTP.LiveWriteTimeout = 300 * time.Millisecond
	})
	owner, _ := e.c.Account()
	// 50 options of 200 characters make every frame ~15 KB.
	texts := make([]string, 50)
	for i := range texts {
		texts[i] = fmt.Sprintf("%03d %s", i, strings.Repeat("x", 196))
	}
	pollID, opts := e.c.Poll(owner, nil, texts...)
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	conn, _, err := d.Dial(e.wsURL(pollID, owner), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // never read
	testenv.Eventually(t, 5*time.Second, func() error {
		if g := metric(t, e.app.Registry, "tally_live_subscribers"); g != 1 {
			return fmt.Errorf("subscribers %v", g)
		}
		return nil
	})
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; metric(t, e.app.Registry, "tally_live_subscribers") != 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("a client that never reads still holds its socket after %d changes", i)
		}
		voter, _ := e.c.Account()
		e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[i%len(opts)]}).Must(t, http.StatusOK)
		time.Sleep(150 * time.Millisecond) // a frame per change (live interval 100 ms)
	}
	if n := metric(t, e.app.Registry, "tally_live_dropped_total", "reason", "slow"); n < 1 {
		t.Fatalf("slow drops %v", n)
	}
}

func TestReadyzDetailOnlyForOperators(t *testing.T) {
	const op = "operator-token-for-the-test-0123456789"
	e := newLimitsEnv(t, func(c *config.Config) {
		c.HTTP.OperatorToken = op
		c.Redis.Addr = "127.0.0.1:1" // nothing listens: a dependency error with an address in it
	})
	pub := e.c.Do("GET", "/readyz", "", nil)
	if pub.Status != http.StatusServiceUnavailable || pub.Str("status") != "not_ready" || len(pub.Body) != 1 {
		t.Fatalf("public readyz: %d %s", pub.Status, pub.Raw)
	}
	if strings.Contains(string(pub.Raw), "127.0.0.1") {
		t.Fatalf("public readyz shows an address: %s", pub.Raw)
	}
	for _, tok := range []string{"wrong", op + "x"} {
		if r := e.c.Do("GET", "/readyz", tok, nil); len(r.Body) != 1 {
			t.Fatalf("readyz with token %q: %s", tok, r.Raw)
		}
	}
	det := e.c.Do("GET", "/readyz", op, nil)
	checks, _ := det.Body["checks"].(map[string]any)
	redis, _ := checks["redis"].(map[string]any)
	if det.Status != http.StatusServiceUnavailable || redis["status"] != "down" || redis["error"] == "" || redis["error"] == nil {
		t.Fatalf("operator readyz: %d %s", det.Status, det.Raw)
	}
	if cass, _ := checks["cassandra"].(map[string]any); cass["status"] != "up" {
		t.Fatalf("operator readyz: %s", det.Raw)
	}
}

func TestSecurityHeadersAndClosedCORS(t *testing.T) {
	e := newLimitsEnv(t, nil)
	r := e.c.Do("GET", "/healthz", "", nil)
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if r.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on an http public URL")
	}
	tok, _ := e.c.Account()
	if me := e.c.Do("GET", "/v1/users/me", tok, nil).Must(t, http.StatusOK); me.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("authenticated answer Cache-Control %q", me.Header.Get("Cache-Control"))
	}
	// Not configured: a cross-origin caller learns nothing it may read.
	pre := e.c.Do("OPTIONS", "/v1/polls", "", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if pre.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS open by default: %v", pre.Header)
	}
	if g := e.c.Do("GET", "/healthz", "", nil, "Origin", "https://app.example"); g.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS open by default: %v", g.Header)
	}
}

func TestCORSAllowList(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) {
		c.PublicURL = "https://tally.example"
		c.HTTP.AllowedOrigins = []string{"https://app.example"}
	})
	if h := e.c.Do("GET", "/healthz", "", nil).Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
		t.Errorf("HSTS %q on an https public URL", h)
	}
	pre := e.c.Do("OPTIONS", "/v1/polls", "", nil, "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, idempotency-key, content-type")
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
	}
	if ah := strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(ah, "authorization") ||
		!strings.Contains(ah, "idempotency-key") {
		t.Fatalf("allowed headers %q", ah)
	}
	g := e.c.Do("GET", "/healthz", "", nil, "Origin", "https://app.example")
	if g.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("simple request: %v", g.Header)
	}
	bad := e.c.Do("OPTIONS", "/v1/polls", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from an unlisted origin: %d %v", bad.Status, bad.Header)
	}
}
