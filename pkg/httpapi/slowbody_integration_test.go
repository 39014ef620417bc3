//go:build integration

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/testenv"
)

// refusedBody is what a trickling connection was answered, if anything.
type refusedBody struct {
	conn       int
	status     int
	code       string
	retryAfter string
}

// Issue 19, hole 11: a vote request whose body trickles in must not hold an
// admission slot, and one client may send only a few unfinished bodies at
// once. One client (203.0.113.7, through the trusted proxy 127.0.0.1) opens
// more vote requests than the whole admission bound and trickles their
// bodies a byte at a time, never finishing; an honest voter at another
// address is still answered 200, and the trickler's requests past its cap
// are refused at once with 429 RATE_LIMITED + Retry-After.
func TestSlowBodiesHoldNoAdmissionSlot(t *testing.T) {
	const (
		maxInFlight = 32
		perClient   = 8
		conns       = maxInFlight + 16
	)
	cfg := testenv.Config(t)
	cfg.TrustedProxies = []string{"127.0.0.1"}
	cfg.Admit.MaxInFlight = maxInFlight
	cfg.HTTP.BodyMaxPerClient = perClient
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"allow_anonymous": true})

	const tricklerIP, honestIP = "203.0.113.7", "198.51.100.9"
	anon := c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", tricklerIP).Must(t, http.StatusOK).
		Str("access_token")

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	answers := make(chan refusedBody, conns)
	var open []net.Conn
	t.Cleanup(func() {
		stop()
		for _, nc := range open {
			nc.Close()
		}
		wg.Wait()
	})
	head := fmt.Sprintf("POST /v1/polls/%s/votes HTTP/1.1\r\nHost: tally.test\r\nAuthorization: Bearer %s\r\n"+
		"X-Forwarded-For: %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{", pollID, anon, tricklerIP)
	for i := range conns {
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		open = append(open, nc)
		if _, err := io.WriteString(nc, head); err != nil {
			t.Fatalf("send headers %d: %v", i, err)
		}
		wg.Add(2)
		// The body: one more byte every 100 ms, 4,096 promised, so it never
		// finishes while the test runs.
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if _, err := nc.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				return // closed by the cleanup while still trickling
			}
			defer resp.Body.Close()
			var env struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&env)
			answers <- refusedBody{conn: i, status: resp.StatusCode, code: env.Error.Code, retryAfter: resp.Header.Get("Retry-After")}
		}()
	}

	// Every connection past the client's cap is answered at once; the rest
	// keep trickling.
	var refused []refusedBody
	deadline := time.After(10 * time.Second)
collect:
	for len(refused) < conns-perClient {
		select {
		case a := <-answers:
			refused = append(refused, a)
		case <-deadline:
			break collect
		}
	}
	// An honest voter elsewhere votes while the trickle goes on.
	voter, _ := c.Account()
	start := time.Now()
	honest := c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]},
		"X-Forwarded-For", honestIP)
	took := time.Since(start)
	// Late answers to the trickler would show a slot or a cap let go.
	select {
	case a := <-answers:
		refused = append(refused, a)
	case <-time.After(300 * time.Millisecond):
	}

	if honest.Status != http.StatusOK && honest.Status != http.StatusAccepted {
		t.Errorf("honest vote during the trickle: %d %s after %v, want 200/202", honest.Status, honest.Raw, took)
	}
	byAnswer := map[string]int{}
	for _, a := range refused {
		byAnswer[fmt.Sprintf("%d %s Retry-After=%q", a.status, a.code, a.retryAfter)]++
	}
	t.Logf("%d trickling connections: answered %v; honest vote %d in %v", conns, byAnswer, honest.Status, took)
	if len(refused) != conns-perClient {
		t.Errorf("%d of %d trickling connections answered, want %d (all past the cap of %d)",
			len(refused), conns, conns-perClient, perClient)
	}
	for _, a := range refused {
		if a.status != http.StatusTooManyRequests || a.code != "RATE_LIMITED" || a.retryAfter == "" {
			t.Errorf("trickling connection %d: %d %s Retry-After=%q, want 429 RATE_LIMITED with Retry-After",
				a.conn, a.status, a.code, a.retryAfter)
			break
		}
	}
}
