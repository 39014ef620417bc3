// Package ratelimit enforces request limits in Redis, shared by every API
// instance, with the generic cell rate algorithm (GCRA) of
// github.com/go-redis/redis_rate: a limit of N per period lets a burst of N
// through and then one request every period/N, so a client that waits is
// let in again smoothly rather than at a window's edge.
//
// Limits are grouped in route classes (vote, poll creation, login,
// register, anonymous tokens, results reads, owner exports), each with
// limits per client IP and per account (login also per login name,
// whatever the IP). Each class fails open (Redis down: the request passes, the system of record
// still guards every invariant) or closed (503 UNAVAILABLE).
//
// The vote route's limits do not cost a round trip of their own: they
// travel in the vote's request (see Defer) and are checked by the vote's
// admission script in the same call to Redis (pkg/redisx/admission).
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/redisx"
)

// Route classes.
const (
	Vote       = "vote"
	PollCreate = "poll_create"
	Login      = "login"
	Register   = "register"
	Anonymous  = "anonymous"
	Results    = "results"
	// Export is a poll owner's ballot export (GET /v1/polls/{id}/export),
	// limited per account only: each one scans a whole poll.
	Export = "export"
)

// Classes lists every route class.
var Classes = []string{Vote, PollCreate, Login, Register, Anonymous, Results, Export}

// Config holds every limit; 0 disables a limit.
type Config struct {
	PollCreatePerHour      int `env:"POLL_CREATE_PER_HOUR" envDefault:"5"`
	PollCreatePerHourPerIP int `env:"POLL_CREATE_PER_HOUR_PER_IP" envDefault:"30"`
	VotesPerMinutePerIP    int `env:"VOTES_PER_MINUTE_PER_IP" envDefault:"10"`
	VotesPerMinutePerUser  int `env:"VOTES_PER_MINUTE_PER_USER" envDefault:"60"`
	// AuthPerMinutePerIP limits register, login and anonymous sign-in per
	// client IP, each class on its own.
	AuthPerMinutePerIP int `env:"AUTH_PER_MINUTE_PER_IP" envDefault:"30"`
	// LoginPerMinutePerName limits login attempts on one login name (email
	// or username, normalised, keyed by its hash) from any IP: brute force
	// on one account is slowed however many addresses it comes from.
	LoginPerMinutePerName int `env:"LOGIN_PER_MINUTE_PER_NAME" envDefault:"10"`
	// AnonymousPerHourPerIP bounds anonymous voter tokens minted per IP
	// per hour (each token is a fresh voter).
	AnonymousPerHourPerIP   int `env:"ANONYMOUS_PER_HOUR_PER_IP" envDefault:"60"`
	ResultsPerMinutePerIP   int `env:"RESULTS_PER_MINUTE_PER_IP" envDefault:"600"`
	ResultsPerMinutePerUser int `env:"RESULTS_PER_MINUTE_PER_USER" envDefault:"600"`
	// ExportsPerHourPerUser bounds the ballot exports one account starts
	// per hour, over all its polls (a burst of that many, then one every
	// hour/N).
	ExportsPerHourPerUser int `env:"EXPORTS_PER_HOUR_PER_USER" envDefault:"10"`
	// FailClosed names the classes refused with 503 UNAVAILABLE while
	// Redis cannot answer; the others pass.
	FailClosed []string `env:"FAIL_CLOSED" envSeparator:"," envDefault:"login"`
	// DisablePerIP switches off every per-IP limit, for load tests and
	// benchmarks that send all traffic from one address. Per-account and
	// per-login-name limits stay on.
	DisablePerIP bool `env:"DISABLE_PER_IP" envDefault:"false"`
}

// Check refuses an unknown class name in FailClosed.
func (c Config) Check() error {
	for _, f := range c.FailClosed {
		if !known(strings.TrimSpace(f)) {
			return errors.New("TALLY_RATE_FAIL_CLOSED: unknown class " + f + " (one of " + strings.Join(Classes, ", ") + ")")
		}
	}
	return nil
}

func known(class string) bool {
	for _, c := range Classes {
		if c == class {
			return true
		}
	}
	return false
}

// Scopes a rule counts by.
const (
	ByIP      = "ip"
	ByAccount = "account"
	ByLogin   = "login"
)

// Rule is one limit of a class: at most N per Period per subject, in a
// burst of up to N.
type Rule struct {
	Class string
	Scope string
	N     int
	// Period is how long N hits take to be forgotten.
	Period time.Duration
}

// Name is the rule's metric label and key part, e.g. vote_ip.
func (r Rule) Name() string { return r.Class + "_" + r.Scope }

func (r Rule) limit() redis_rate.Limit {
	return redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Period}
}

// Hit is one request counted under a rule for a subject.
type Hit struct {
	Rule    Rule
	Subject string
}

// key is the rule's Redis key for the subject; redis_rate prefixes it with
// "rate:" (Deferred.Keys does the same, so both read one state).
func (h Hit) key() string { return redisx.RateLimit(h.Rule.Name(), h.Subject) }

// Decision is what the limits said about one request: the most
// restrictive rule's state, for the RateLimit-* headers.
type Decision struct {
	Rule      Rule
	Allowed   bool
	Limit     int
	Remaining int
	// Reset is how long until the rule is back to its full burst.
	Reset time.Duration
	// RetryAfter is how long until the next request may pass (refused
	// requests only).
	RetryAfter time.Duration
}

// Limited is the error of a refused request: RATE_LIMITED with the
// decision that refused it.
type Limited struct{ Decision Decision }

func (e *Limited) Error() string { return apperr.ErrRateLimited.Message }

// Unwrap makes errors.Is/As see the RATE_LIMITED sentinel.
func (e *Limited) Unwrap() error { return apperr.ErrRateLimited }

// ErrUnavailable refuses a fail-closed class while Redis cannot answer:
// the shared 503 UNAVAILABLE (the vote outcome log counts it as rejected).
var ErrUnavailable = apperr.ErrUnavailable

// Limiter checks rules in Redis.
type Limiter struct {
	cfg        Config
	rl         *redis_rate.Limiter
	log        *zap.Logger
	failClosed map[string]bool
	count      *prometheus.CounterVec
}

// New builds a limiter and registers its metric. The clock is Redis's own
// (TIME inside the scripts), so every instance judges by one clock; the
// now parameter is kept for the callers' signature and unused.
func New(cfg Config, rdb *redis.Client, log *zap.Logger, _ func() time.Time, reg prometheus.Registerer) *Limiter {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_rate_limit_total",
		Help: "Rate-limit decisions by rule (class_scope) and outcome: allowed, limited, error_open (Redis failed, let through), error_closed (Redis failed, 503).",
	}, []string{"rule", "outcome"})
	reg.MustRegister(c)
	fc := map[string]bool{}
	for _, f := range cfg.FailClosed {
		fc[strings.TrimSpace(f)] = true
	}
	return &Limiter{cfg: cfg, rl: redis_rate.NewLimiter(rdb), log: log, failClosed: fc, count: c}
}

// FailsClosed reports whether class is refused while Redis is down.
func (l *Limiter) FailsClosed(class string) bool { return l.failClosed[class] }

// Rules returns the class's rules in force, most specific first (none
// for a nil limiter).
func (l *Limiter) Rules(class string) []Rule {
	if l == nil {
		return nil
	}
	c := l.cfg
	var rs []Rule
	add := func(scope string, n int, period time.Duration) {
		if n <= 0 || (scope == ByIP && c.DisablePerIP) {
			return
		}
		rs = append(rs, Rule{Class: class, Scope: scope, N: n, Period: period})
	}
	switch class {
	case Vote:
		add(ByAccount, c.VotesPerMinutePerUser, time.Minute)
		add(ByIP, c.VotesPerMinutePerIP, time.Minute)
	case PollCreate:
		add(ByAccount, c.PollCreatePerHour, time.Hour)
		add(ByIP, c.PollCreatePerHourPerIP, time.Hour)
	case Login:
		add(ByLogin, c.LoginPerMinutePerName, time.Minute)
		add(ByIP, c.AuthPerMinutePerIP, time.Minute)
	case Register:
		add(ByIP, c.AuthPerMinutePerIP, time.Minute)
	case Anonymous:
		add(ByIP, c.AuthPerMinutePerIP, time.Minute)
		if c.AnonymousPerHourPerIP > 0 && !c.DisablePerIP {
			// A second rule on the same scope: its own key.
			rs = append(rs, Rule{Class: class, Scope: "ip_hour", N: c.AnonymousPerHourPerIP, Period: time.Hour})
		}
	case Results:
		add(ByAccount, c.ResultsPerMinutePerUser, time.Minute)
		add(ByIP, c.ResultsPerMinutePerIP, time.Minute)
	case Export:
		add(ByAccount, c.ExportsPerHourPerUser, time.Hour)
	}
	return rs
}

// LoginSubject is the per-login-name subject: a hash of the normalised
// login, so no email or username is stored in Redis.
func LoginSubject(login string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(login))))
	return hex.EncodeToString(sum[:16])
}

// Allow counts one request of class under hits, one redis_rate call each,
// and returns the most restrictive decision. A refused request gets a
// *Limited error; a Redis failure passes (fail-open class) or gets
// ErrUnavailable (fail-closed class).
func (l *Limiter) Allow(ctx context.Context, class string, hits ...Hit) (Decision, error) {
	var best Decision
	for i, h := range hits {
		res, err := l.rl.Allow(ctx, h.key(), h.Rule.limit())
		if err != nil {
			return Decision{}, l.failed(class, h.Rule.Name(), err)
		}
		d := Decision{Rule: h.Rule, Allowed: res.Allowed > 0, Limit: h.Rule.N, Remaining: res.Remaining,
			Reset: res.ResetAfter, RetryAfter: res.RetryAfter}
		if !d.Allowed {
			l.count.WithLabelValues(h.Rule.Name(), "limited").Inc()
			return d, &Limited{Decision: d}
		}
		l.count.WithLabelValues(h.Rule.Name(), "allowed").Inc()
		if i == 0 || d.Remaining < best.Remaining {
			best = d
		}
	}
	return best, nil
}

// failed applies class's failure mode to a Redis error.
func (l *Limiter) failed(class, rule string, err error) error {
	if l.failClosed[class] {
		l.count.WithLabelValues(rule, "error_closed").Inc()
		l.log.Warn("rate limit unavailable, refusing (fail-closed class)", zap.String("class", class), zap.Error(err))
		return errors.Join(ErrUnavailable, err)
	}
	l.count.WithLabelValues(rule, "error_open").Inc()
	l.log.Debug("rate limit unavailable, allowing", zap.String("class", class), zap.Error(err))
	return nil
}

// Seconds rounds a duration up to whole seconds for the headers (at least
// 1 for a positive duration, 0 for none).
func Seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
