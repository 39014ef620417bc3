package redisx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// TestBreakerOpensOnUnreachableRedis dials a loopback port nothing listens
// on: five refused commands open the breaker and the next fails at once.
func TestBreakerOpensOnUnreachableRedis(t *testing.T) {
	c := New(Config{Addr: "127.0.0.1:1", PoolSize: 4, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	defer c.Close()
	RouteLogs(zap.NewNop())
	WithBreaker(c, zap.NewNop(), prometheus.NewRegistry())
	ctx := context.Background()
	for i := range 5 {
		if err := c.Get(ctx, "k").Err(); err == nil || errors.Is(err, gobreaker.ErrOpenState) {
			t.Fatalf("call %d: %v, want a connection error", i, err)
		}
	}
	start := time.Now()
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("after 5 failures: %v, want the breaker open", err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Fatalf("open breaker took %s", time.Since(start))
	}
	pipe := c.Pipeline()
	get := pipe.Get(ctx, "k")
	if _, err := pipe.Exec(ctx); !errors.Is(err, gobreaker.ErrOpenState) || !errors.Is(get.Err(), gobreaker.ErrOpenState) {
		t.Fatalf("pipeline with the breaker open: %v / %v", err, get.Err())
	}
}
