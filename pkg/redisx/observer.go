package redisx

import (
	"context"
	"errors"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Observer counts client-side Redis failures by kind and exports the
// connection pool's use. A reply such as a missing key or a Redis error
// reply is the server answering, not a client error.
type Observer struct {
	errors *prometheus.CounterVec
}

// NewObserver registers the Redis series for c on reg and hooks c. Call it
// before redisx.WithBreaker so the hook is outside the breaker and counts
// the commands it refuses.
func NewObserver(c *redis.Client, reg prometheus.Registerer) *Observer {
	o := &Observer{errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_redis_errors_total",
		Help: "Redis commands that failed in the client, by kind (timeout, network, breaker_open, pool_timeout, other). Replies such as nil or a server error are not counted.",
	}, []string{"kind"})}
	reg.MustRegister(o.errors, &redisPool{c: c,
		conns:    prometheus.NewDesc("tally_redis_pool_connections", "Connections in the Redis pool by state (idle, in_use).", []string{"state"}, nil),
		waits:    prometheus.NewDesc("tally_redis_pool_waits_total", "Times a command waited for a pooled Redis connection.", nil, nil),
		timeouts: prometheus.NewDesc("tally_redis_pool_timeouts_total", "Times a command gave up waiting for a pooled Redis connection.", nil, nil),
		misses:   prometheus.NewDesc("tally_redis_pool_misses_total", "Times no idle Redis connection was free and one was dialled.", nil, nil),
	})
	for _, k := range []string{"timeout", "network", "breaker_open", "pool_timeout", "other"} {
		o.errors.WithLabelValues(k)
	}
	c.AddHook(o)
	return o
}

// DialHook implements redis.Hook.
func (o *Observer) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			o.errors.WithLabelValues(ErrorKind(err)).Inc()
		}
		return c, err
	}
}

// ProcessHook implements redis.Hook.
func (o *Observer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		o.count(err)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (o *Observer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		o.count(err)
		return err
	}
}

func (o *Observer) count(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return
	}
	o.errors.WithLabelValues(ErrorKind(err)).Inc()
}

// ErrorKind names a client-side Redis failure with one of a fixed set
// of values.
func ErrorKind(err error) string {
	var nerr net.Error
	switch {
	case errors.Is(err, redis.ErrPoolTimeout):
		return "pool_timeout"
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "breaker_open"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.As(err, &nerr), errors.Is(err, redis.ErrClosed):
		return "network"
	}
	return "other"
}

type redisPool struct {
	c                              *redis.Client
	conns, waits, timeouts, misses *prometheus.Desc
}

func (p *redisPool) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.conns
	ch <- p.waits
	ch <- p.timeouts
	ch <- p.misses
}

func (p *redisPool) Collect(ch chan<- prometheus.Metric) {
	s := p.c.PoolStats()
	idle := float64(s.IdleConns)
	ch <- prometheus.MustNewConstMetric(p.conns, prometheus.GaugeValue, idle, "idle")
	ch <- prometheus.MustNewConstMetric(p.conns, prometheus.GaugeValue, max(float64(s.TotalConns)-idle, 0), "in_use")
	ch <- prometheus.MustNewConstMetric(p.waits, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(p.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(p.misses, prometheus.CounterValue, float64(s.Misses))
}
