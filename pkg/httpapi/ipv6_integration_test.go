//go:build integration

package httpapi_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/testenv"
)

// randomNet64 is an IPv6 /64 of this run alone (limit state in the shared
// Redis outlives a test): its first four groups, e.g. "2001:db8:1a:2b".
func randomNet64() string {
	return fmt.Sprintf("2001:db8:%x:%x", rand.IntN(0x10000), rand.IntN(0x10000))
}

// Issue 19, hole 13: a client is limited per IPv6 /64, not per address,
// since one host picks addresses in its /64 at will. Addresses in one /64
// share the per-IP rate limits, the ip_burst and anonymous_ip bot rules and
// the cap on live sockets; an address of another /64 does not. Clients
// speak through the trusted proxy 127.0.0.1 (X-Forwarded-For).
func TestIPv6ClientsLimitedPerSlash64(t *testing.T) {
	t.Run("rate limits", func(t *testing.T) {
		cfg := testenv.Config(t)
		cfg.TrustedProxies = []string{"127.0.0.1"}
		cfg.RateLimit = ratelimit.Config{ResultsPerMinutePerIP: 2}
		_, srv := testenv.Server(t, cfg)
		c := testenv.NewClient(t, srv.URL)
		owner, _ := c.Account()
		pollID, _ := c.Poll(owner, nil)
		results := func(ip string) testenv.Response {
			return c.Do("GET", "/v1/polls/"+pollID+"/results", owner, nil, "X-Forwarded-For", ip)
		}
		net := randomNet64()
		results(net+"::1").Must(t, http.StatusOK)
		results(net+"::2").Must(t, http.StatusOK)
		must429(t, "a third address of the /64", results(net+":abcd:1234:5678:9abc"), 2)
		results(randomNet64()+"::1").Must(t, http.StatusOK)
	})

	t.Run("bot rules", func(t *testing.T) {
		cfg := botConfig(t, "sync")
		cfg.Bots = abuse.Config{IPBurst: 2, IPBurstWindow: time.Minute, AnonymousPerIP: 1, AnonymousWindow: time.Hour}
		r := newBotRig(t, cfg)
		owner, _ := r.c.Account()

		// ip_burst: the third signed-in voter from the /64 is refused.
		pollID, opts := r.c.Poll(owner, map[string]any{"bot_policy": "reject"})
		net := randomNet64()
		for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusForbidden} {
			tok, _ := r.c.Account()
			if st, code := r.vote(pollID, opts[0], voter{token: tok, ip: fmt.Sprintf("%s::%x", net, i+1)}); st != want {
				t.Fatalf("ip_burst: voter %d from the /64: %d %s, want %d", i+1, st, code, want)
			}
		}
		tok, _ := r.c.Account()
		if st, code := r.vote(pollID, opts[0], voter{token: tok, ip: randomNet64() + "::1"}); st != http.StatusOK {
			t.Fatalf("ip_burst: a voter of another /64: %d %s", st, code)
		}

		// anonymous_ip: the second anonymous voter from the /64 is refused.
		pollID, opts = r.c.Poll(owner, map[string]any{"bot_policy": "reject", "allow_anonymous": true})
		net = randomNet64()
		for i, want := range []int{http.StatusOK, http.StatusForbidden} {
			ip := fmt.Sprintf("%s::%x", net, i+1)
			tok := r.c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", ip).Must(t, http.StatusOK).
				Str("access_token")
			if st, code := r.vote(pollID, opts[0], voter{token: tok, ip: ip}); st != want {
				t.Fatalf("anonymous_ip: anonymous voter %d from the /64: %d %s, want %d", i+1, st, code, want)
			}
		}
	})

	t.Run("live sockets", func(t *testing.T) {
		e := newLimitsEnv(t, func(c *config.Config) {
			c.TrustedProxies = []string{"127.0.0.1"}
			c.HTTP.LiveMaxPerIP = 1
		})
		owner, _ := e.c.Account()
		pollID, _ := e.c.Poll(owner, nil)
		u := e.wsURL(pollID, "")
		net := randomNet64()
		dial(t, u, from(net+"::1"))
		refusal(t, u, from(net+"::2"), http.StatusTooManyRequests, "RATE_LIMITED")
		dial(t, u, from(randomNet64()+"::1"))
	})
}
