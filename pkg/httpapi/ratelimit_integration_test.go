//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/testenv"
)

// randomIP is a client address of this run alone (limit state in the
// shared Redis outlives a test by up to an hour).
func randomIP() string {
	return fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254))
}

// TestRateLimits runs the rate-limit tests on one keyspace (each makes
// servers of its own on it). The config trusts 127.0.0.1 as a proxy, so
// each test speaks from addresses of its own through X-Forwarded-For,
// with every limit off but those a test sets.
func TestRateLimits(t *testing.T) {
	base := testenv.Config(t)
	base.TrustedProxies = []string{"127.0.0.1"}
	base.RateLimit = ratelimit.Config{FailClosed: []string{ratelimit.Login}}
	t.Run("classes", func(t *testing.T) { testRateLimitClasses(t, base) })
	t.Run("votes", func(t *testing.T) { testVoteRateLimits(t, base) })
	t.Run("votes share the flag round trip", func(t *testing.T) { testVoteLimitsShareTheFlagRoundTrip(t, base) })
	t.Run("login fails closed without Redis", func(t *testing.T) { testLoginFailsClosedWithoutRedis(t, base) })
	t.Run("login brute force from many IPs", func(t *testing.T) { testLoginBruteForceManyIPs(t, base) })
}

// must429 checks a refusal: 429 RATE_LIMITED in the envelope with
// Retry-After and the RateLimit-* headers naming the limit.
func must429(t *testing.T, what string, r testenv.Response, limit int) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
		t.Fatalf("%s: %d %s, want 429 RATE_LIMITED", what, r.Status, r.Raw)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
	if r.Header.Get("RateLimit-Limit") != strconv.Itoa(limit) || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("%s: RateLimit-Limit %q Remaining %q, want %d and 0", what,
			r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"), limit)
	}
	if s, err := strconv.Atoi(r.Header.Get("RateLimit-Reset")); err != nil || s < 1 {
		t.Fatalf("%s: RateLimit-Reset %q", what, r.Header.Get("RateLimit-Reset"))
	}
}

// Each route class limits per IP or per account and answers 429 with the
// headers; a request let through carries RateLimit-Remaining.
func testRateLimitClasses(t *testing.T, cfg config.Config) {
	cfg.RateLimit.PollCreatePerHour = 2
	cfg.RateLimit.AuthPerMinutePerIP = 2
	cfg.RateLimit.AnonymousPerHourPerIP = 3
	cfg.RateLimit.ResultsPerMinutePerUser = 3
	cfg.RateLimit.ResultsPerMinutePerIP = 4
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)

	// Accounts come from addresses of their own.
	account := func() (string, string) {
		name := "u_" + strings.ReplaceAll(randomIP(), ".", "_")
		ip := randomIP()
		c.Do("POST", "/v1/auth/register", "", map[string]any{"email": name + "@example.test", "username": name,
			"password": "correct horse battery"}, "X-Forwarded-For", ip).Must(t, http.StatusCreated)
		r := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "correct horse battery"},
			"X-Forwarded-For", ip).Must(t, http.StatusOK)
		return r.Str("access_token"), name
	}

	t.Run("poll_create per account", func(t *testing.T) {
		owner, _ := account()
		body := map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}
		r := c.Do("POST", "/v1/polls", owner, body, "X-Forwarded-For", randomIP()).Must(t, http.StatusCreated)
		if r.Header.Get("RateLimit-Remaining") != "1" || r.Header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("first poll: RateLimit-Remaining %q", r.Header.Get("RateLimit-Remaining"))
		}
		c.Do("POST", "/v1/polls", owner, body, "X-Forwarded-For", randomIP()).Must(t, http.StatusCreated)
		// A third, from yet another address: the account is the subject.
		must429(t, "third poll", c.Do("POST", "/v1/polls", owner, body, "X-Forwarded-For", randomIP()), 2)
		other, _ := account()
		c.Do("POST", "/v1/polls", other, body, "X-Forwarded-For", randomIP()).Must(t, http.StatusCreated)
	})
	for _, route := range []string{"register", "login", "anonymous"} {
		t.Run(route+" per IP", func(t *testing.T) {
			ip := randomIP()
			send := func() testenv.Response {
				n := "u_" + strings.ReplaceAll(randomIP(), ".", "_")
				switch route {
				case "register":
					return c.Do("POST", "/v1/auth/register", "", map[string]any{"email": n + "@example.test", "username": n,
						"password": "correct horse battery"}, "X-Forwarded-For", ip)
				case "login":
					return c.Do("POST", "/v1/auth/login", "", map[string]any{"login": n, "password": "wrong password"},
						"X-Forwarded-For", ip)
				}
				return c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", ip)
			}
			for i := range 2 {
				if r := send(); r.Status == http.StatusTooManyRequests || r.Status >= 500 {
					t.Fatalf("%s %d: %d %s", route, i, r.Status, r.Raw)
				}
			}
			must429(t, route+" 3rd from one IP", send(), 2)
			// Another address is not limited.
			ip = randomIP()
			if r := send(); r.Status == http.StatusTooManyRequests {
				t.Fatalf("%s from another IP: %s", route, r.Raw)
			}
		})
	}
	t.Run("anonymous tokens per IP per hour", func(t *testing.T) {
		// A farm pacing itself under the per-minute limit still meets the
		// hourly one (here the per-minute one is off).
		hourly := cfg
		hourly.RateLimit.AuthPerMinutePerIP = 0
		_, srv := testenv.Server(t, hourly)
		c := testenv.NewClient(t, srv.URL)
		ip := randomIP()
		for range 3 {
			c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", ip).Must(t, http.StatusOK)
		}
		r := c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", ip)
		must429(t, "4th anonymous token in the hour", r, 3)
		if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); s < 60 {
			t.Fatalf("Retry-After %d, want the hourly rule's (about 20 minutes)", s)
		}
	})
	t.Run("results per account and per IP", func(t *testing.T) {
		owner, _ := account()
		pollID, _ := c.Poll(owner, nil)
		path := "/v1/polls/" + pollID + "/results"
		for range 3 {
			c.Do("GET", path, owner, nil, "X-Forwarded-For", randomIP()).Must(t, http.StatusOK)
		}
		must429(t, "4th read by one account", c.Do("GET", path, owner, nil, "X-Forwarded-For", randomIP()), 3)
		ip := randomIP()
		for range 4 {
			c.Do("GET", path, "", nil, "X-Forwarded-For", ip).Must(t, http.StatusOK)
		}
		must429(t, "5th anonymous read from one IP", c.Do("GET", path, "", nil, "X-Forwarded-For", ip), 4)
	})
}

// Votes: per IP and per account, in both modes. The limits ride the vote's
// admission script (pkg/redisx/admission); a refused vote leaves no flag,
// so the voter may vote once the limit allows.
func testVoteRateLimits(t *testing.T, base config.Config) {
	for _, mode := range []string{"async", "sync"} {
		t.Run(mode, func(t *testing.T) {
			cfg := base
			cfg.Vote.Mode = mode
			cfg.RateLimit.VotesPerMinutePerIP = 3
			cfg.RateLimit.VotesPerMinutePerUser = 2
			_, srv := testenv.Server(t, cfg)
			c := testenv.NewClient(t, srv.URL)
			owner, _ := c.Account()
			want := http.StatusAccepted
			if mode == "sync" {
				want = http.StatusOK
			}

			// Per IP: three voters from one address, the fourth refused.
			pollID, opts := c.Poll(owner, nil)
			ip := randomIP()
			var refused string
			for i := range 4 {
				voter, _ := c.Account()
				r := c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}, "X-Forwarded-For", ip)
				if i < 3 {
					r.Must(t, want)
					continue
				}
				must429(t, "4th voter from one IP", r, 3)
				refused = voter
			}
			// The refused voter was not flagged: from another address it votes.
			c.Do("POST", "/v1/polls/"+pollID+"/votes", refused, map[string]any{"option_id": opts[0]}, "X-Forwarded-For", randomIP()).
				Must(t, want)

			// Per account: two polls, the third refused whatever the IP.
			voter, _ := c.Account()
			for i := range 3 {
				p, o := c.Poll(owner, nil)
				r := c.Do("POST", "/v1/polls/"+p+"/votes", voter, map[string]any{"option_id": o[0]}, "X-Forwarded-For", randomIP())
				if i < 2 {
					r.Must(t, want)
					continue
				}
				must429(t, "3rd vote by one account in the minute", r, 2)
			}
		})
	}
}

// The async vote's limits and its duplicate flag are one Redis command:
// no command of the request touches a rate key without the voter's flag.
func testVoteLimitsShareTheFlagRoundTrip(t *testing.T, cfg config.Config) {
	cfg.Vote.Mode = "async"
	cfg.RateLimit.VotesPerMinutePerIP = 100
	cfg.RateLimit.VotesPerMinutePerUser = 100
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	voter, _ := c.Account()
	pollID, opts := c.Poll(owner, nil)
	c.Do("GET", "/v1/polls/"+pollID, voter, nil).Must(t, http.StatusOK) // warm the poll cache

	rec := &cmdRecorder{}
	a.Redis.AddHook(rec)
	c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}, "X-Forwarded-For", randomIP()).
		Must(t, http.StatusAccepted)
	var rate, flag, both int
	for _, cmd := range rec.get() {
		r := strings.Contains(cmd, "rate:rl:vote_")
		// The flag's pending set (the queued mark after the produce is a
		// step of its own: mark_queued.lua's "pending" mode).
		f := strings.Contains(cmd, "voted:"+pollID) && !strings.HasSuffix(cmd, " pending")
		switch {
		case r && f:
			both++
		case r:
			rate++
		case f:
			flag++
		}
	}
	if both != 1 || rate != 0 || flag != 0 {
		t.Fatalf("want one command with both the vote limits and the flag; got %d with both, %d limit-only, %d flag-only: %q",
			both, rate, flag, rec.get())
	}
}

type cmdRecorder struct {
	mu   sync.Mutex
	cmds []string
}

func (r *cmdRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cmds...)
}

func (r *cmdRecorder) add(cmds ...redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cmds {
		args := make([]string, len(c.Args()))
		for i, a := range c.Args() {
			args[i] = fmt.Sprint(a)
		}
		r.cmds = append(r.cmds, strings.Join(args, " "))
	}
}

func (r *cmdRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *cmdRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add(cmd)
		return next(ctx, cmd)
	}
}

func (r *cmdRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.add(cmds...)
		return next(ctx, cmds)
	}
}

// Login fails closed: with Redis unreachable it is 503 UNAVAILABLE, while
// register and votes (fail-open classes) still go through. Accounts and
// the poll are made through a server with Redis, on the same keyspace.
func testLoginFailsClosedWithoutRedis(t *testing.T, cfg config.Config) {
	cfg.RateLimit.LoginPerMinutePerName = 10
	cfg.RateLimit.AuthPerMinutePerIP = 10
	cfg.RateLimit.VotesPerMinutePerUser = 10
	cfg.RateLimit.VotesPerMinutePerIP = 10
	_, up := testenv.Server(t, cfg)
	c := testenv.NewClient(t, up.URL)
	owner, _ := c.Account()
	voter, _ := c.Account()
	pollID, opts := c.Poll(owner, nil)

	cfg.Redis.Addr = "127.0.0.1:1" // nothing listens there: the shared Redis is never stopped
	_, down := testenv.Server(t, cfg)
	d := testenv.NewClient(t, down.URL)
	name := "u_" + strings.ReplaceAll(randomIP(), ".", "_")
	d.Do("POST", "/v1/auth/register", "", map[string]any{"email": name + "@example.test", "username": name,
		"password": "correct horse battery"}).Must(t, http.StatusCreated)
	for range 3 {
		r := d.Do("POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "correct horse battery"})
		if r.Status != http.StatusServiceUnavailable || r.Code() != "UNAVAILABLE" {
			t.Fatalf("login with Redis down: %d %s, want 503 UNAVAILABLE", r.Status, r.Raw)
		}
	}
	d.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	d.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK)
	// With Redis back (the other server), the same login works.
	c.Do("POST", "/v1/auth/login", "", map[string]any{"login": name, "password": "correct horse battery"}).Must(t, http.StatusOK)
}

// Brute force on one account from many addresses: each address tries
// once (the per-IP limit never trips), and the per-login-name limit slows
// it all the same; the account's owner from elsewhere is refused too
// until the limit recovers, other accounts are not.
func testLoginBruteForceManyIPs(t *testing.T, cfg config.Config) {
	cfg.RateLimit.AuthPerMinutePerIP = 5
	cfg.RateLimit.LoginPerMinutePerName = 3
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	victim := "u_" + strings.ReplaceAll(randomIP(), ".", "_")
	c.Do("POST", "/v1/auth/register", "", map[string]any{"email": victim + "@example.test", "username": victim,
		"password": "correct horse battery"}, "X-Forwarded-For", randomIP()).Must(t, http.StatusCreated)

	var wrong, limited int
	for i := range 20 {
		login := victim
		if i%2 == 1 {
			login = " " + strings.ToUpper(victim) // another spelling: the same login name
		}
		r := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": login, "password": fmt.Sprintf("guess %d!", i)},
			"X-Forwarded-For", randomIP())
		switch r.Status {
		case http.StatusUnauthorized:
			wrong++
		case http.StatusTooManyRequests:
			must429(t, "brute force", r, 3)
			limited++
		default:
			t.Fatalf("attempt %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if wrong != 3 || limited != 17 {
		t.Fatalf("20 guesses from 20 addresses: %d judged, %d limited; want 3 and 17", wrong, limited)
	}
	// Another account from a fresh address logs in.
	other := "u_" + strings.ReplaceAll(randomIP(), ".", "_")
	ip := randomIP()
	c.Do("POST", "/v1/auth/register", "", map[string]any{"email": other + "@example.test", "username": other,
		"password": "correct horse battery"}, "X-Forwarded-For", ip).Must(t, http.StatusCreated)
	c.Do("POST", "/v1/auth/login", "", map[string]any{"login": other, "password": "correct horse battery"},
		"X-Forwarded-For", ip).Must(t, http.StatusOK)
}
