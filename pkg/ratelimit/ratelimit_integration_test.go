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

// The vote path's own GCRA script (ratelimit.Script) reads and writes the
// same state as the library: hits through either count against one limit,
// and the script refuses with the same retry-after. Its limits are
// all-or-nothing: a refusal by one consumes none of the others.
func TestScriptSharesLibraryState(t *testing.T) {
	rdb := testenv.Redis(t)
	l := limiter(t, ratelimit.Config{VotesPerMinutePerUser: 4, VotesPerMinutePerIP: 2}, rdb)
	acct := ratelimit.Hit{Rule: rule(l, ratelimit.Vote, ratelimit.ByAccount), Subject: uuid.NewString()}
	ip := ratelimit.Hit{Rule: rule(l, ratelimit.Vote, ratelimit.ByIP), Subject: uuid.NewString()}
	ctx := context.Background()

	// Two through the library on the account.
	for range 2 {
		if _, err := l.Allow(ctx, ratelimit.Vote, acct); err != nil {
			t.Fatal(err)
		}
	}
	// Two through the script on account and IP: the account has 2 left.
	for i := range 2 {
		if err := ratelimit.Enforce(l.Defer(ctx, ratelimit.Vote, acct, ip)); err != nil {
			t.Fatalf("script hit %d: %v", i, err)
		}
	}
	// The account is spent: the script refuses, naming the account rule,
	// and the library agrees.
	err := ratelimit.Enforce(l.Defer(ctx, ratelimit.Vote, acct))
	var lim *ratelimit.Limited
	if !errors.As(err, &lim) || lim.Decision.Rule.Scope != ratelimit.ByAccount {
		t.Fatalf("spent account through the script: %v", err)
	}
	if ra := lim.Decision.RetryAfter; ra <= 0 || ra > 15*time.Second {
		t.Fatalf("retry after %v, want at most a minute/4", ra)
	}
	if _, err := l.Allow(ctx, ratelimit.Vote, acct); !errors.As(err, &lim) {
		t.Fatalf("spent account through the library: %v", err)
	}
	// All-or-nothing: a fresh account with the spent IP is refused by the
	// IP rule and its own limit stays untouched (4 more pass).
	fresh := ratelimit.Hit{Rule: acct.Rule, Subject: uuid.NewString()}
	if err := ratelimit.Enforce(l.Defer(ctx, ratelimit.Vote, fresh, ip)); !errors.As(err, &lim) || lim.Decision.Rule.Scope != ratelimit.ByIP {
		t.Fatalf("spent IP: %v", err)
	}
	for i := range 4 {
		if d, err := l.Allow(ctx, ratelimit.Vote, fresh); err != nil || d.Remaining != 3-i {
			t.Fatalf("fresh account hit %d: %+v %v", i, d, err)
		}
	}
	// A script with a body runs it only when the limits allow.
	body := ratelimit.Script(`redis.call("INCR", KEYS[K + 1]) return 7`)
	counter := "tally:test:ratelimit:" + uuid.NewString()
	t.Cleanup(func() { rdb.Del(context.Background(), counter) })
	run := func(hits ...ratelimit.Hit) (any, error) {
		d := l.Defer(ctx, ratelimit.Vote, hits...)
		lim := ratelimit.DeferredFrom(d)
		keys := append(lim.Keys(), counter)
		return lim.Settle(body.Run(ctx, rdb, keys, lim.Args()...).Result())
	}
	other := ratelimit.Hit{Rule: acct.Rule, Subject: uuid.NewString()}
	if v, err := run(other); err != nil || v != int64(7) {
		t.Fatalf("allowed body: %v %v", v, err)
	}
	if _, err := run(other, ip); !errors.As(err, &lim) {
		t.Fatalf("refused body: %v", err)
	}
	if n, _ := rdb.Get(ctx, counter).Int(); n != 1 {
		t.Fatalf("body ran %d times, want 1 (not when refused)", n)
	}
	// No limits at all: the body runs.
	if v, err := ratelimit.DeferredFrom(ctx).Settle(body.Run(ctx, rdb, []string{counter}, 0).Result()); err != nil || v != int64(7) {
		t.Fatalf("body without limits: %v %v", v, err)
	}
}

// Redis unreachable: a fail-open class passes, a fail-closed one is 503.
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
		if err := ratelimit.Enforce(l.Defer(ctx, ratelimit.Vote, vote)); err != nil {
			t.Fatalf("fail-open class through the script: %v", err)
		}
	}
	login := ratelimit.Hit{Rule: rule(l, ratelimit.Login, ratelimit.ByLogin), Subject: ratelimit.LoginSubject("Alice ")}
	if _, err := l.Allow(ctx, ratelimit.Login, login); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("fail-closed class: %v", err)
	}
}
