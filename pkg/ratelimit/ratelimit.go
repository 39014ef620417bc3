// Package ratelimit enforces fixed-window request limits in Redis, shared by
// every API instance. It fails open: with Redis down, requests pass and the
// system of record still guards every invariant.
package ratelimit

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/redisx"
)

// Config holds every limit; 0 disables a limit.
type Config struct {
	PollCreatePerHour     int `env:"POLL_CREATE_PER_HOUR" envDefault:"5"`
	VotesPerMinutePerIP   int `env:"VOTES_PER_MINUTE_PER_IP" envDefault:"10"`
	VotesPerMinutePerUser int `env:"VOTES_PER_MINUTE_PER_USER" envDefault:"60"`
	AuthPerMinutePerIP    int `env:"AUTH_PER_MINUTE_PER_IP" envDefault:"30"`
	// DisablePerIP switches off every per-IP limit, for load tests and
	// benchmarks that send all traffic from one address. Per-account
	// limits stay on.
	DisablePerIP bool `env:"DISABLE_PER_IP" envDefault:"false"`
}

// Rule is one limit: at most Limit hits per Window per subject.
type Rule struct {
	Name   string
	Limit  int
	Window time.Duration
	PerIP  bool
}

// Limiter counts hits in Redis.
type Limiter struct {
	cfg   Config
	rdb   *redis.Client
	log   *zap.Logger
	now   func() time.Time
	count *prometheus.CounterVec
}

// New builds a limiter and registers its metric.
func New(cfg Config, rdb *redis.Client, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Limiter {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_rate_limit_total", Help: "Rate-limit decisions by rule and outcome (allowed, limited, error).",
	}, []string{"rule", "outcome"})
	reg.MustRegister(c)
	return &Limiter{cfg: cfg, rdb: rdb, log: log, now: now, count: c}
}

// Rules the API applies.
func (l *Limiter) PollCreate() Rule {
	return Rule{Name: "poll_create", Limit: l.cfg.PollCreatePerHour, Window: time.Hour}
}

// VoteIP limits votes per client address.
func (l *Limiter) VoteIP() Rule {
	return Rule{Name: "vote_ip", Limit: l.cfg.VotesPerMinutePerIP, Window: time.Minute, PerIP: true}
}

// VoteUser limits votes per account or voter token.
func (l *Limiter) VoteUser() Rule {
	return Rule{Name: "vote_user", Limit: l.cfg.VotesPerMinutePerUser, Window: time.Minute}
}

// AuthIP limits register, login and anonymous sign-in per client address.
func (l *Limiter) AuthIP() Rule {
	return Rule{Name: "auth_ip", Limit: l.cfg.AuthPerMinutePerIP, Window: time.Minute, PerIP: true}
}

// Allow counts one hit for subject under rule. When the limit is exceeded it
// returns false and how long until the window resets.
func (l *Limiter) Allow(ctx context.Context, rule Rule, subject string) (bool, time.Duration) {
	if rule.Limit <= 0 || (rule.PerIP && l.cfg.DisablePerIP) {
		return true, 0
	}
	now := l.now()
	window := now.UnixNano() / int64(rule.Window)
	reset := time.Unix(0, (window+1)*int64(rule.Window)).Sub(now)
	key := redisx.RateWindow(rule.Name, subject, window)
	pipe := l.rdb.Pipeline()
	incr := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, rule.Window+time.Second)
	if _, err := pipe.Exec(ctx); err != nil {
		l.count.WithLabelValues(rule.Name, "error").Inc()
		l.log.Debug("rate limit unavailable, allowing", zap.String("rule", rule.Name), zap.Error(err))
		return true, 0
	}
	if incr.Val() > int64(rule.Limit) {
		l.count.WithLabelValues(rule.Name, "limited").Inc()
		return false, reset
	}
	l.count.WithLabelValues(rule.Name, "allowed").Inc()
	return true, 0
}
