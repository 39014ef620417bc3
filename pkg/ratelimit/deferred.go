package ratelimit

import (
	"time"
)

// Deferred holds a request's limits until the code that talks to Redis
// anyway checks them in the same round trip: the vote route's limits are
// checked by the vote's admission script (pkg/redisx/admission), which
// takes Keys and Args as its first keys and arguments and hands its verdict
// back to Settle (or its failure to Fail). It is used by one request.
type Deferred struct {
	l     *Limiter
	class string
	hits  []Hit
	done  bool
	// Decision is the outcome once checked.
	Decision Decision
}

// Defer holds class's hits to be checked later (see Deferred); nil when
// there is nothing to check (no hits, or a nil limiter).
func (l *Limiter) Defer(class string, hits ...Hit) *Deferred {
	if l == nil || len(hits) == 0 {
		return nil
	}
	return &Deferred{l: l, class: class, hits: hits}
}

// Pending reports whether the limits are still to be checked.
func (d *Deferred) Pending() bool { return d != nil && !d.done && len(d.hits) > 0 }

// Keys are the limits' Redis keys, in the order of their rules (none once
// checked). The GCRA state is redis_rate's own, under its prefix, so
// Limiter.Allow and the script read and write one state.
func (d *Deferred) Keys() []string {
	if !d.Pending() {
		return nil
	}
	keys := make([]string, len(d.hits))
	for i, h := range d.hits {
		keys[i] = "rate:" + h.key()
	}
	return keys
}

// Args are the limits' arguments: the number of limits, then burst, rate
// and period (seconds) of each, as redis_rate's Limit has them ({0} once
// checked).
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

// Verdict is what a script that checked the limits said about them.
type Verdict struct {
	Allowed bool
	// Rule is the 1-based index of the rule that refused the request or,
	// when allowed, of the one with the fewest requests left.
	Rule int
	// RetryAfter is how long until a refused request may pass.
	RetryAfter time.Duration
	// Reset is how long until the rule is back to its full burst.
	Reset     time.Duration
	Remaining int
}

// Settle takes the script's verdict on the limits, counts it and returns a
// *Limited when a limit refused. It does nothing once the limits were
// checked (or for a nil d).
func (d *Deferred) Settle(v Verdict) error {
	if !d.Pending() {
		return nil
	}
	d.done = true
	idx := v.Rule
	if idx < 1 || idx > len(d.hits) {
		idx = 1
	}
	rule := d.hits[idx-1].Rule
	d.Decision = Decision{Rule: rule, Allowed: v.Allowed, Limit: rule.N, Remaining: v.Remaining,
		Reset: v.Reset, RetryAfter: v.RetryAfter}
	if !v.Allowed {
		d.l.count.WithLabelValues(rule.Name(), "limited").Inc()
		return &Limited{Decision: d.Decision}
	}
	for _, h := range d.hits {
		d.l.count.WithLabelValues(h.Rule.Name(), "allowed").Inc()
	}
	return nil
}

// Fail applies the class's failure mode to the script's Redis error: nil
// for a fail-open class (the request goes on unchecked), ErrUnavailable
// for a fail-closed one. It returns nil once the limits were checked (or
// for a nil d).
func (d *Deferred) Fail(err error) error {
	if !d.Pending() {
		return nil
	}
	d.done = true
	return d.l.failed(d.class, d.hits[0].Rule.Name(), err)
}
