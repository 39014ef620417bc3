package redisx

import (
	"context"
	"errors"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisprometheus/v9"
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
	// The pool's stats come from go-redis's own Prometheus collector
	// (tally_redis_pool_{hit,miss,timeout}_total, _conn_total_current,
	// _conn_idle_current, _conn_stale_total); it leaves out the waits for
	// a connection, the first sign of a pool too small, so that one
	// series is ours.
	reg.MustRegister(o.errors, redisprometheus.NewCollector("tally", "redis", c), &poolWaits{c: c,
		waits: prometheus.NewDesc("tally_redis_pool_waits_total", "Times a command waited for a pooled Redis connection.", nil, nil),
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

// poolWaits exports the one pool stat redisprometheus leaves out.
type poolWaits struct {
	c     *redis.Client
	waits *prometheus.Desc
}

func (p *poolWaits) Describe(ch chan<- *prometheus.Desc) { ch <- p.waits }

func (p *poolWaits) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(p.waits, prometheus.CounterValue, float64(p.c.PoolStats().WaitCount))
}
