// Package redisx sets up the Redis client and owns Tally's key names.
package redisx

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Config describes how to reach Redis.
type Config struct {
	Addr         string        `env:"ADDR" envDefault:"127.0.0.1:6380"`
	Password     string        `env:"PASSWORD"`
	DB           int           `env:"DB" envDefault:"0"`
	PoolSize     int           `env:"POOL_SIZE" envDefault:"64"`
	DialTimeout  time.Duration `env:"DIAL_TIMEOUT" envDefault:"500ms"`
	ReadTimeout  time.Duration `env:"READ_TIMEOUT" envDefault:"300ms"`
	WriteTimeout time.Duration `env:"WRITE_TIMEOUT" envDefault:"300ms"`
	// AutoPipeline sends the per-vote admission script through go-redis's
	// automatic pipeliner: calls that arrive while a batch is in flight go
	// out together in the next one (no timer, so a lone call waits for
	// nothing). Off, each vote's script is its own round trip.
	AutoPipeline bool `env:"AUTO_PIPELINE" envDefault:"true"`
}

// New builds a client. It does not dial: Redis is an accelerator, and Tally
// must start and serve votes while it is down.
func New(cfg Config) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         cfg.Addr,
		Password:     cfg.Password,
		DB:           cfg.DB,
		PoolSize:     cfg.PoolSize,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		// RESP2: Tally uses no push messages (no client-side caching, no
		// pub/sub), and with RESP3 the client peeks every connection for
		// pending pushes before each command — 5 % of the API's CPU on the
		// vote path in the 1,200 votes/s profile (bench/RESULTS.md).
		Protocol: 2,
		// One quick retry; beyond that the caller degrades to Cassandra.
		MaxRetries:         1,
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
	})
}

// Logger routes go-redis's own messages (pool dial failures, which repeat
// on every request while Redis is down) to zap at debug level; Tally logs
// the degradation itself where it matters.
type Logger struct{ L *zap.SugaredLogger }

// Printf implements go-redis's logging interface.
func (l Logger) Printf(_ context.Context, format string, v ...any) { l.L.Debugf(format, v...) }

// RouteLogs installs l as go-redis's process-wide logger.
func RouteLogs(l *zap.Logger) { redis.SetLogger(Logger{L: l.Sugar()}) }

// Ping checks that Redis answers.
func Ping(ctx context.Context, c *redis.Client) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}
