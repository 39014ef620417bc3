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
