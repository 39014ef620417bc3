package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// tracingMiddleware is otelgin's server span, named by the route template
// ("POST /v1/polls/:poll_id/votes"), continuing a W3C traceparent the
// client sent. Probes and scrapes are not traced: they are many and say
// nothing about a request. Its HTTP metrics go nowhere; Prometheus has
// them (tally_http_*).
func tracingMiddleware(tp trace.TracerProvider) gin.HandlerFunc {
	return otelgin.Middleware("tally",
		otelgin.WithTracerProvider(tp),
		otelgin.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgin.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/metrics", "/healthz", "/readyz":
				return false
			}
			return true
		}),
		otelgin.WithSpanNameFormatter(func(c *gin.Context) string {
			if route := c.FullPath(); route != "" {
				return c.Request.Method + " " + route
			}
			return ""
		}))
}
