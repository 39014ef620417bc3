package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Deferred holds a request's limits until the code that talks to Redis
// anyway checks them in the same round trip: the vote route's limits are
// checked by the queue's flag script (see Script), or, when the vote is
// recorded without the queue, by Enforce. It is used by one request.
type Deferred struct {
	l     *Limiter
	class string
	hits  []Hit
	done  bool
	// Decision is the outcome once checked.
	Decision Decision
}

type deferredKey struct{}

// Defer carries class's hits in ctx, to be checked later (see Deferred).
func (l *Limiter) Defer(ctx context.Context, class string, hits ...Hit) context.Context {
	return context.WithValue(ctx, deferredKey{}, &Deferred{l: l, class: class, hits: hits})
}

// DeferredFrom returns the limits ctx carries, or nil.
func DeferredFrom(ctx context.Context) *Deferred {
	d, _ := ctx.Value(deferredKey{}).(*Deferred)
	return d
}

// Pending reports whether the limits are still to be checked.
func (d *Deferred) Pending() bool { return d != nil && !d.done && len(d.hits) > 0 }

// Keys are the limit keys to pass first to a Script (none once checked).
func (d *Deferred) Keys() []string {
	if !d.Pending() {
		return nil
	}
	keys := make([]string, len(d.hits))
	for i, h := range d.hits {
		// redis_rate's own prefix: the same state as Limiter.Allow.
		keys[i] = "rate:" + h.key()
	}
	return keys
}

// Args are the limit arguments to pass first to a Script: the number of
// limits, then burst, rate and period (seconds) of each.
func (d *Deferred) Args() []any {
	if !d.Pending() {
		return []any{0}
	}
	args := make([]any, 0, 1+3*len(d.hits))
	args = append(args, len(d.hits))
	for _, h := range d.hits {
		args = append(args, h.Rule.N, h.Rule.N, h.Rule.Period.Seconds())
	}
	return args
}

// Settle reads a Script's reply (or its error) and returns the body's
// result. err is a *Limited when a limit refused (the body did not run),
// ErrUnavailable when Redis failed and the class fails closed; with Redis
// failing and the class failing open both are nil: the caller goes on
// without what the body would have done. d may be nil (no limits).
func (d *Deferred) Settle(reply any, rerr error) (body any, err error) {
	pending := d.Pending()
	if pending {
		d.done = true
	}
	if rerr != nil {
		if !pending {
			return nil, nil
		}
		return nil, d.l.failed(d.class, d.hits[0].Rule.Name(), rerr)
	}
	vals, ok := reply.([]any)
	if !ok || len(vals) < 6 {
		return nil, fmt.Errorf("ratelimit: unexpected script reply %v", reply)
	}
	allowed, _ := vals[0].(int64)
	idx, _ := vals[1].(int64)
	if !pending {
		return vals[5], nil
	}
	retry, _ := strconv.ParseFloat(str(vals[2]), 64)
	reset, _ := strconv.ParseFloat(str(vals[3]), 64)
	remaining, _ := vals[4].(int64)
	if idx < 1 || int(idx) > len(d.hits) {
		idx = 1
	}
	rule := d.hits[idx-1].Rule
	d.Decision = Decision{Rule: rule, Allowed: allowed == 1, Limit: rule.N, Remaining: int(remaining),
		Reset: secs(reset), RetryAfter: secs(retry)}
	if allowed != 1 {
		d.l.count.WithLabelValues(rule.Name(), "limited").Inc()
		return nil, &Limited{Decision: d.Decision}
	}
	for _, h := range d.hits {
		d.l.count.WithLabelValues(h.Rule.Name(), "allowed").Inc()
	}
	return vals[5], nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func secs(f float64) time.Duration {
	if f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// Enforce checks the limits ctx carries, if they are still pending, in
// one round trip: for a vote recorded without the queue's flag step
// (sync mode, or the queue unavailable before it flagged).
func Enforce(ctx context.Context) error {
	d := DeferredFrom(ctx)
	if !d.Pending() {
		return nil
	}
	_, err := d.Settle(limitsOnly.Run(ctx, d.l.rdb, d.Keys(), d.Args()...).Result())
	return err
}

var limitsOnly = Script(`return 1`)

// Script builds a Lua script that first checks the GCRA limits passed as
// its first keys and arguments (Deferred.Keys, Deferred.Args) and then,
// only if every limit allows, runs body and commits the limits. body sees
// the Lua locals K and A: the index of the last limit key and the last
// limit argument, so its own keys are KEYS[K+1]... and its own arguments
// ARGV[A+1]...; it must return a value that is not nil.
//
// Why not redis_rate: its script is unexported and run with EvalSha and an
// immediate read of the reply, so it cannot join a pipeline or another
// script, and each limit is a round trip of its own. The vote route's
// limits share the queue's flag round trip, so its GCRA is written here,
// to redis_rate's semantics and state (same key prefix, same theoretical
// arrival time stored as seconds since 2017-01-01 by Redis's TIME, same
// burst and emission interval), so Limiter.Allow and Script read and
// write one state. Unlike separate calls, all limits are all-or-nothing:
// a request refused by one limit consumes none of the others.
func Script(body string) *redis.Script {
	return redis.NewScript(gcraPrelude + "local result = (function()\n" + body + "\nend)()\n" + gcraCommit)
}

// gcraPrelude checks every limit without writing; a refusal returns
// {0, index, retry_after, reset_after, 0, false}.
const gcraPrelude = `
local n = tonumber(ARGV[1])
local K, A = n, 1 + 3 * n
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tats = {}
local minidx, minrem, reset = 0, -1, 0
for i = 1, n do
  local burst = tonumber(ARGV[3 * i - 1])
  local rate = tonumber(ARGV[3 * i])
  local period = tonumber(ARGV[3 * i + 1])
  local interval = period / rate
  local tat = redis.call("GET", KEYS[i])
  if tat then tat = math.max(tonumber(tat), now) else tat = now end
  local new_tat = tat + interval
  local diff = now - (new_tat - interval * burst)
  if diff < 0 then
    return {0, i, tostring(-diff), tostring(tat - now), 0, 0}
  end
  local rem = math.floor(diff / interval)
  tats[i] = new_tat
  if minrem < 0 or rem < minrem then minidx, minrem, reset = i, rem, new_tat - now end
end
`

// gcraCommit stores every limit's new arrival time after the body ran.
const gcraCommit = `
for i = 1, n do
  local ttl = tats[i] - now
  if ttl > 0 then redis.call("SET", KEYS[i], tats[i], "EX", math.ceil(ttl)) end
end
return {1, minidx, "-1", tostring(reset), minrem, result}
`
