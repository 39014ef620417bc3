package redisx

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// WithBreaker makes c fail fast while Redis is unreachable: after five
// consecutive connection-level failures every command fails at once for two
// seconds, then one probe decides. Without it, a Redis that times out rather
// than refuses would add its dial timeout to every vote while Tally degrades
// to Cassandra. Replies such as a missing key or a Redis error are successes:
// the server answered.
func WithBreaker(c *redis.Client, log *zap.Logger, reg prometheus.Registerer) {
	open := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_redis_breaker_open", Help: "1 while the Redis circuit breaker is open (commands fail fast).",
	})
	reg.MustRegister(open)
	cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:    "redis",
		Timeout: 2 * time.Second,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= 5
		},
		IsSuccessful: func(err error) bool {
			var rerr redis.Error
			return err == nil || errors.Is(err, redis.Nil) || errors.As(err, &rerr) ||
				errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				open.Set(1)
			} else {
				open.Set(0)
			}
			log.Warn("redis breaker", zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
	c.AddHook(breakerHook{cb: cb})
}

// inBreaker marks a context whose command already passed the breaker. A
// new connection runs its own handshake commands (HELLO, CLIENT SETINFO)
// through the client's hooks with the command's context; without the
// mark, those nested commands met the half-open breaker, which admits one
// request, and failed the very probe that was dialling — so after a Redis
// restart the breaker flapped open for as long as traffic lasted.
type inBreaker struct{}

func passed(ctx context.Context) bool { return ctx.Value(inBreaker{}) != nil }

type breakerHook struct {
	cb *gobreaker.CircuitBreaker[any]
}

func (h breakerHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h breakerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if passed(ctx) {
			return next(ctx, cmd)
		}
		ctx = context.WithValue(ctx, inBreaker{}, true)
		_, err := h.cb.Execute(func() (any, error) { return nil, next(ctx, cmd) })
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			cmd.SetErr(err)
		}
		return err
	}
}

func (h breakerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if passed(ctx) {
			return next(ctx, cmds)
		}
		ctx = context.WithValue(ctx, inBreaker{}, true)
		_, err := h.cb.Execute(func() (any, error) { return nil, next(ctx, cmds) })
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			for _, c := range cmds {
				c.SetErr(err)
			}
		}
		return err
	}
}
