package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := Policy{Base: 50 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 50 * time.Millisecond}, {2, 100 * time.Millisecond}, {4, 400 * time.Millisecond}, {5, 800 * time.Millisecond},
		{6, time.Second}, {60, time.Second}, {0, 50 * time.Millisecond}} {
		if got := p.Backoff(tc.attempt); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestDo(t *testing.T) {
	fail := errors.New("fail")
	fast := Policy{Base: time.Millisecond, Max: time.Millisecond}
	tests := []struct {
		name      string
		policy    Policy
		failFirst int  // attempts that fail before success
		permanent bool // the failures are permanent
		cancel    bool
		wantCalls int
		wantErr   error
	}{
		{"succeeds first", fast, 0, false, false, 1, nil},
		{"retries until success", fast, 3, false, false, 4, nil},
		{"bounded attempts", Policy{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}, 5, false, false, 2, fail},
		{"permanent stops at once", fast, 5, true, false, 1, fail},
		{"context ends the wait", Policy{Base: time.Hour, Max: time.Hour}, 5, false, true, 1, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err := Do(ctx, tc.policy, func(int) error {
				calls++
				if tc.cancel {
					cancel()
				}
				if calls <= tc.failFirst {
					if tc.permanent {
						return Permanent(fail)
					}
					return fail
				}
				return nil
			}, nil)
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("calls %d err %v; want %d %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

// The waits Do reports (and sleeps) are Policy.Backoff's, attempt by
// attempt, with no jitter; the attempt numbers are fn's.
func TestDoWaitsArePolicyBackoff(t *testing.T) {
	p := Policy{Base: time.Microsecond, Max: 8 * time.Microsecond, Attempts: 7}
	var attempts []int
	var waits []time.Duration
	err := Do(context.Background(), p, func(int) error { return errors.New("fail") }, func(attempt int, _ error, wait time.Duration) {
		attempts = append(attempts, attempt)
		waits = append(waits, wait)
	})
	if err == nil || len(waits) != 6 {
		t.Fatalf("err %v, %d retries; want an error after 6 retries", err, len(waits))
	}
	for i, w := range waits {
		if attempts[i] != i+1 || w != p.Backoff(i+1) {
			t.Fatalf("retry %d: attempt %d wait %s; want attempt %d wait %s", i, attempts[i], w, i+1, p.Backoff(i+1))
		}
	}
	// A permanent error on the last allowed attempt comes back unmarked.
	last := errors.New("last")
	err = Do(context.Background(), Policy{Base: time.Microsecond, Max: time.Microsecond, Attempts: 1},
		func(int) error { return Permanent(last) }, nil)
	if err != last {
		t.Fatalf("got %#v, want the bare error", err)
	}
}
