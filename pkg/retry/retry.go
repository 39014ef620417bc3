// Package retry runs an operation again, with capped exponential backoff,
// until it succeeds, says it is final, or the context ends. Every wait
// honours the context: shutdown never waits out a backoff.
package retry

import (
	"context"
	"errors"
	"time"
)

// Policy is a capped exponential backoff.
type Policy struct {
	Base time.Duration // first wait
	Max  time.Duration // no wait is longer
	// Attempts bounds the tries; 0 means until ctx ends.
	Attempts int
}

// Backoff is the wait after the given failed attempt (1-based).
func (p Policy) Backoff(attempt int) time.Duration {
	d := p.Base << min(max(attempt-1, 0), 20)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	return d
}

// permanent marks an error not worth retrying.
type permanent struct{ err error }

func (e permanent) Error() string { return e.err.Error() }
func (e permanent) Unwrap() error { return e.err }

// Permanent wraps err so Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls fn until it returns nil or a Permanent error, the attempts run
// out, or ctx ends. onRetry (may be nil) hears about every failure that is
// retried. It returns fn's last error (unwrapped from Permanent), or ctx's
// error when ctx ended first.
func Do(ctx context.Context, p Policy, fn func(attempt int) error, onRetry func(attempt int, err error, wait time.Duration)) error {
	for attempt := 1; ; attempt++ {
		err := fn(attempt)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			return err
		}
		wait := p.Backoff(attempt)
		if onRetry != nil {
			onRetry(attempt, err, wait)
		}
		if err := Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Sleep waits for d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Every calls fn every d until ctx ends (the first call after d).
func Every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
