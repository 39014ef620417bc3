// Package retry runs an operation again, with capped exponential backoff,
// until it succeeds, says it is final, or the context ends. Every wait
// honours the context: shutdown never waits out a backoff. The loop is
// cenkalti/backoff's (v5, already in the module graph through
// OpenTelemetry); this package keeps the project's one call shape (an
// attempt number for the operation and the log line, a Policy value per
// call site, no elapsed-time limit unless asked) on top of it.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
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
	attempt := 0
	opts := []backoff.RetryOption{
		// No jitter: the waits are exactly Policy.Backoff's.
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: p.Backoff(1), Multiplier: 2, MaxInterval: p.Max}),
		backoff.WithMaxElapsedTime(0), // until ctx ends (the library's default gives up after 15 min)
	}
	if p.Attempts > 0 {
		opts = append(opts, backoff.WithMaxTries(uint(p.Attempts)))
	}
	if onRetry != nil {
		opts = append(opts, backoff.WithNotify(func(err error, wait time.Duration) { onRetry(attempt, err, wait) }))
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := fn(attempt)
		var perm permanent
		if errors.As(err, &perm) {
			return struct{}{}, backoff.Permanent(perm.err)
		}
		return struct{}{}, err
	}, opts...)
	// The library checks its attempt bound before the permanent mark, so a
	// last attempt's permanent error comes back still marked.
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return perm.Unwrap()
	}
	return err
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
