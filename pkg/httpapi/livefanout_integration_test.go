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
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

// sseEvent is one event read off a results stream.
type sseEvent struct {
	name string
	data map[string]any
}

// sseStream reads a results stream in the background.
type sseStream struct {
	resp *http.Response
	// events carries the stream's events in order and is closed after the
	// last one, so a reader never sees the end before an event the server
	// wrote ahead of it (a select over two ready channels picks either).
	events chan sseEvent
	done   chan error // the read's end (io.EOF: the server ended the stream)
	err    error      // the read's end, set before events is closed
}

func openStream(t *testing.T, base, pollID, token string) *sseStream {
	t.Helper()
	resp, err := http.Get(base + "/v1/polls/" + pollID + "/results/stream?access_token=" + token)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") && !strings.Contains(cc, "no-store") {
		t.Fatalf("Cache-Control %q", cc)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 64), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.name != "":
				s.events <- ev
				ev = sseEvent{}
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		s.err = err
		close(s.events)
		s.done <- err
	}()
	return s
}

// until returns the first results event that satisfies ok within d.
func (s *sseStream) until(t *testing.T, d time.Duration, what string, ok func(f map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, open := <-s.events:
			if !open {
				t.Fatalf("%s: the stream ended: %v", what, s.err)
			}
			if ev.name != "results" {
				t.Fatalf("%s: event %q %v", what, ev.name, ev.data)
			}
			if ok(ev.data) {
				return ev.data
			}
		case <-deadline:
			t.Fatalf("%s: no such frame within %v", what, d)
		}
	}
}

func total(n float64) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["total_votes"].(float64) == n }
}

// A vote cast through process B reaches a stream and a socket held by
// process A within a second of being applied, through the counts notice
// alone (A's backstop is a minute away). The stream honours the socket's
// visibility rule.
func TestLiveFanOutAcrossProcesses(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.LiveBackstop = time.Minute
	_, srvA := testenv.Server(t, cfg)
	_, srvB := testenv.Server(t, cfg)
	ca, cb := testenv.NewClient(t, srvA.URL), testenv.NewClient(t, srvB.URL)
	owner, _ := ca.Account()
	pollID, opts := ca.Poll(owner, nil)

	stream := openStream(t, srvA.URL, pollID, owner)
	first := stream.until(t, 5*time.Second, "first frame", total(0))
	if first["poll_id"] != pollID || first["tally"] != "live" || first["as_of"] == nil {
		t.Fatalf("first frame %v", first)
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srvA.URL, "http")+"/v1/polls/"+pollID+"/live?access_token="+owner, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer ws.Close()
	wsUntil := func(n float64) {
		t.Helper()
		for {
			_ = ws.SetReadDeadline(time.Now().Add(time.Second))
			var f map[string]any
			if err := ws.ReadJSON(&f); err != nil {
				t.Fatalf("socket: no frame with total %v: %v", n, err)
			}
			if f["total_votes"].(float64) == n {
				return
			}
		}
	}
	wsUntil(0)

	for i := 1; i <= 3; i++ {
		voter, _ := cb.Account()
		cb.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[i%len(opts)]}).Must(t, http.StatusOK)
		applied := time.Now()
		stream.until(t, 3*time.Second, "vote through B", total(float64(i)))
		if lag := time.Since(applied); lag > time.Second {
			t.Fatalf("vote %d reached A's stream %v after it was applied, want ≤ 1 s", i, lag)
		}
		wsUntil(float64(i))
	}

	// Hidden results: refused before the stream starts, in the envelope.
	hidden, _ := ca.Poll(owner, map[string]any{"show_results_during_voting": false})
	outsider, _ := ca.Account()
	r := ca.Do("GET", "/v1/polls/"+hidden+"/results/stream?access_token="+outsider, "", nil)
	if r.Status != http.StatusForbidden || r.Code() != "RESULTS_HIDDEN" {
		t.Fatalf("hidden poll stream: %d %s", r.Status, r.Raw)
	}
}

// startAPI serves cfg through the binary's own http.Server (with its
// timeouts), not httptest's.
func startAPI(t *testing.T, cfg func() *app.App) (*app.App, *http.Server, string) {
	t.Helper()
	a := cfg()
	srv, err := a.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); a.Close() })
	return a, srv, "http://" + ln.Addr().String()
}

// A stream outlives the server's write timeout and keeps receiving frames;
// a server shutdown ends it with an UNAVAILABLE event instead of waiting
// for it.
func TestResultsStreamOutlivesTheWriteTimeout(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.HTTP.WriteTimeout = 500 * time.Millisecond
	_, srv, base := startAPI(t, func() *app.App {
		a, err := app.New(context.Background(), cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	c := testenv.NewClient(t, base)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, nil)
	stream := openStream(t, base, pollID, owner)
	stream.until(t, 5*time.Second, "first frame", total(0))
	for i := 1; i <= 2; i++ {
		time.Sleep(3 * cfg.HTTP.WriteTimeout)
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
		stream.until(t, 3*time.Second, "frame past the write timeout", total(float64(i)))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	select {
	case ev := <-stream.events:
		if ev.name != "error" || ev.data["error"].(map[string]any)["code"] != "UNAVAILABLE" {
			t.Fatalf("last event %q %v", ev.name, ev.data)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no closing event at shutdown")
	}
	select {
	case err := <-stream.done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream end: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
}

// Counters bumped without any notice (as when a notice is lost) reach the
// stream within one backstop interval.
func TestLiveBackstopRepairsALostNotice(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.LiveBackstop = time.Second
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, nil)
	stream := openStream(t, srv.URL, pollID, owner)
	stream.until(t, 5*time.Second, "first frame", total(0))

	ctx := context.Background()
	p, err := a.Polls.Get(ctx, mustUUID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	// tally.Service.Add counts without announcing (the app's counter
	// wrapper is what publishes).
	if err := a.Tally.Add(ctx, p, 0, [][]id.ID{{mustUUID(t, opts[1])}}, nil); err != nil {
		t.Fatal(err)
	}
	// One backstop, the live cache's TTL, and slack for a busy machine.
	stream.until(t, cfg.LiveBackstop+cfg.Tally.LiveCacheTTL+time.Second, "backstop", total(1))
}

// A close shows at once (the poll change notice wakes the hub), and so
// does the freeze (the reconciliation announces it): a final frame, with
// the backstop a minute away.
func TestLiveFinalFrameWhenThePollFreezes(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.LiveBackstop = time.Minute
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, nil)
	voter, _ := c.Account()
	c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[2]}).Must(t, http.StatusOK)
	stream := openStream(t, srv.URL, pollID, owner)
	stream.until(t, 5*time.Second, "first frame", total(1))

	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	stream.until(t, time.Second, "closed frame", func(f map[string]any) bool { return f["status"] == "closed" })

	ctx := context.Background()
	p, err := a.Polls.Get(ctx, mustUUID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	f := stream.until(t, 2*time.Second, "final frame", func(f map[string]any) bool { return f["tally"] == "final" })
	if f["total_votes"].(float64) != 1 || f["status"] != "closed" {
		t.Fatalf("final frame %v", f)
	}
}

// next returns the stream's next event within d.
func (s *sseStream) next(t *testing.T, d time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("the stream ended: %v", s.err)
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return sseEvent{}
}

// ended waits for the server to end the stream after an error event with
// code.
func (s *sseStream) ended(t *testing.T, d time.Duration, code string) {
	t.Helper()
	for {
		ev := s.next(t, d)
		if ev.name == "results" {
			continue
		}
		if ev.name != "error" || ev.data["error"].(map[string]any)["code"] != code {
			t.Fatalf("event %q %v, want error %s", ev.name, ev.data, code)
		}
		break
	}
	select {
	case err := <-s.done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream end: %v", err)
		}
	case <-time.After(d):
		t.Fatal("the stream stayed open after its error event")
	}
}

// Streams share the sockets' caps, and end when the caller may no longer
// see the results (at once: the poll change re-asks) or the token expires.
func TestResultsStreamLimits(t *testing.T) {
	e := newLimitsEnv(t, func(c *config.Config) {
		c.HTTP.LiveMaxPerIP = 2
		c.Auth.TokenTTL = 6 * time.Second
	})
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, nil)
	outsider, _ := e.c.Account()
	watching := openStream(t, e.url, pollID, outsider)
	watching.until(t, 5*time.Second, "first frame", total(0))
	ws := dial(t, e.wsURL(pollID, owner), nil) // the second slot of 127.0.0.1
	defer ws.Close()
	r := e.c.Do("GET", "/v1/polls/"+pollID+"/results/stream?access_token="+owner, "", nil)
	if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third live connection from one IP: %d %s", r.Status, r.Raw)
	}
	ws.Close()

	e.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": map[string]any{"show_results_during_voting": false}}).
		Must(t, http.StatusOK)
	watching.ended(t, 2*time.Second, "RESULTS_HIDDEN")
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := metric(t, e.app.Registry, "tally_live_dropped_total", "reason", "results_hidden"); n != 1 {
			return fmt.Errorf("results_hidden drops %v", n)
		}
		return nil
	})

	// The owner's token (6 s) expires while its stream is open.
	mine := openStream(t, e.url, pollID, owner)
	mine.until(t, 5*time.Second, "first frame", total(0))
	mine.ended(t, 8*time.Second, "UNAUTHENTICATED")
}
