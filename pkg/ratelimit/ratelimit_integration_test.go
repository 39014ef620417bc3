//go:build integration

package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/testenv"
)

func limiter(t *testing.T, cfg ratelimit.Config, rdb *redis.Client) *ratelimit.Limiter {
	t.Helper()
	return ratelimit.New(cfg, rdb, zap.NewNop(), time.Now, prometheus.NewRegistry())
}

func rule(l *ratelimit.Limiter, class, scope string) ratelimit.Rule {
	for _, r := range l.Rules(class) {
		if r.Scope == scope {
			return r
		}
	}
	panic("no rule " + class + " " + scope)
}

// The library's GCRA: a burst of N, then refused with a Retry-After of
// about period/N, the remaining count going down one by one.
func TestAllowBurstThenRefuse(t *testing.T) {
	l := limiter(t, ratelimit.Config{PollCreatePerHour: 3}, testenv.Redis(t))
	h := ratelimit.Hit{Rule: rule(l, ratelimit.PollCreate, ratelimit.ByAccount), Subject: uuid.NewString()}
	ctx := context.Background()
	for i := range 3 {
		d, err := l.Allow(ctx, ratelimit.PollCreate, h)
		if err != nil || !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("hit %d: %+v %v", i, d, err)
		}
	}
	_, err := l.Allow(ctx, ratelimit.PollCreate, h)
	var lim *ratelimit.Limited
	if !errors.As(err, &lim) || !errors.Is(err, apperr.ErrRateLimited) {
		t.Fatalf("fourth hit: %v", err)
	}
	if ra := lim.Decision.RetryAfter; ra < 19*time.Minute || ra > 20*time.Minute {
		t.Fatalf("retry after %v, want about an hour/3", ra)
	}
	if lim.Decision.Reset < 59*time.Minute {
		t.Fatalf("reset %v, want about an hour", lim.Decision.Reset)
	}
}

// Redis unreachable: a fail-open class passes, a fail-closed one is 503.
// (The vote's admission script applies the same modes:
// pkg/redisx/admission.)
func TestFailOpenAndClosed(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	l := limiter(t, ratelimit.Config{VotesPerMinutePerUser: 1, LoginPerMinutePerName: 1, FailClosed: []string{ratelimit.Login}}, rdb)
	ctx := context.Background()
	vote := ratelimit.Hit{Rule: rule(l, ratelimit.Vote, ratelimit.ByAccount), Subject: "a"}
	for range 3 {
		if _, err := l.Allow(ctx, ratelimit.Vote, vote); err != nil {
			t.Fatalf("fail-open class: %v", err)
		}
	}
	login := ratelimit.Hit{Rule: rule(l, ratelimit.Login, ratelimit.ByLogin), Subject: ratelimit.LoginSubject("Alice ")}
	if _, err := l.Allow(ctx, ratelimit.Login, login); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("fail-closed class: %v", err)
	}
}
