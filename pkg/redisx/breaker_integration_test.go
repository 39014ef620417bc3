//go:build integration

package redisx_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestBreakerRecoversAfterRedisRestart fills the pool, restarts the real
// Redis, and checks that the client answers again within a few seconds of
// Redis being back: a breaker probing one stale pooled connection at a
// time once kept /readyz failing for minutes.
func TestBreakerRecoversAfterRedisRestart(t *testing.T) {
	c := redisx.New(redisx.Config{Addr: "127.0.0.1:6380", PoolSize: 64, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	defer c.Close()
	redisx.WithBreaker(c, zap.NewNop(), prometheus.NewRegistry())
	load, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 32 { // steady traffic through the restart, as the vote path has
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil {
				c.Set(load, "tally:test:breaker", "x", time.Second)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)
	testenv.Restart(t, "redis")
	back := time.Now()
	ctx := context.Background()
	for i := 0; ; i++ {
		if err := redisx.Ping(ctx, c); err == nil {
			break
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("client still failing %s after Redis came back", time.Since(back).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("client answered %s after Redis came back", time.Since(back).Round(10*time.Millisecond))
}
