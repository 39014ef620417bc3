package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/reqid"
	"github.com/tally-vote/tally/pkg/tracing"
)

const loggerKey = "tally.logger"

// loggerFrom returns the request's logger: the router's logger with the
// request's http_request_id. It is built here, when something is about to
// be logged, rather than once per request: most requests log nothing, and
// a zap logger With a field costs about 1 KiB (it clones the encoder and
// its buffer) on every accepted vote otherwise.
func loggerFrom(c *gin.Context) *zap.Logger {
	if l, ok := c.Get(loggerKey); ok {
		ctx := c.Request.Context()
		return l.(*zap.Logger).With(zap.String("http_request_id", reqid.From(ctx)), tracing.LogField(ctx))
	}
	return zap.NewNop()
}

// requestContext assigns a request id, keeps the logger for loggerFrom and
// writes one structured access-log line per request (at debug level, so
// its fields are built only when that level is on).
func requestContext(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		rid := c.GetHeader("X-Request-Id")
		if rid == "" || len(rid) > 64 {
			rid = uuid.NewString()
		}
		c.Header("X-Request-Id", rid)
		if sp := trace.SpanFromContext(c.Request.Context()); sp.IsRecording() {
			// The request's span names the id its log lines carry.
			sp.SetAttributes(attribute.String("http.request_id", rid))
		}
		c.Set(loggerKey, log)
		c.Request = c.Request.WithContext(reqid.With(c.Request.Context(), rid))
		start := time.Now()
		c.Next()
		if c.FullPath() == "/metrics" || c.FullPath() == "/healthz" {
			return
		}
		if ce := log.Check(zap.DebugLevel, "http request"); ce != nil {
			// The same line loggerFrom(c).Debug would write.
			ce.Write(zap.String("http_request_id", rid),
				zap.String("method", c.Request.Method),
				zap.String("route", c.FullPath()),
				zap.Int("status", c.Writer.Status()),
				zap.Duration("latency", time.Since(start)),
				tracing.LogField(c.Request.Context()))
		}
	}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and status class (2xx, 4xx, 5xx).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5},
		}, []string{"method", "route", "class"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *httpMetrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(c.Request.Method, route, strconv.Itoa(status/100)+"xx").Observe(time.Since(start).Seconds())
	}
}

// recoverer turns a panic into a 500 INTERNAL envelope and logs the value;
// the client never sees internals.
func recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				loggerFrom(c).Error("panic recovered", zap.Any("panic", r), zap.Stack("stack"))
				abort(c, errors.New("panic"))
			}
		}()
		c.Next()
	}
}

// admission bounds the vote requests in flight: past the bound the request
// is refused at once with 503 OVERLOADED and Retry-After, before any work
// (token check, Redis, Kafka) is spent on it. It runs after readBody, so a
// slot is held for work on a vote, never while its body arrives.
func admission(g *admit.Gate) gin.HandlerFunc {
	return func(c *gin.Context) {
		if g == nil {
			return
		}
		done, err := g.Enter()
		if err != nil {
			abort(c, err)
			return
		}
		defer done()
		c.Next()
	}
}
