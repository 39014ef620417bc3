package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-contrib/pprof"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
)

// Check is one dependency probed by /readyz.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Soft checks are reported as "degraded" without failing readiness.
	Soft bool
}

// checkResult is what /readyz shows an operator of a dependency: its state
// and, when it failed, the error (addresses, driver messages). Anyone else
// sees the overall status only; every error also goes to the log.
type checkResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// OpsDeps are what the operator listener of a process without the API
// (`tally worker`) needs.
type OpsDeps struct {
	Log      *zap.Logger
	Registry *prometheus.Registry
	Checks   []Check
	// OperatorToken unlocks /readyz's per-dependency detail, as on the API.
	OperatorToken string
	Pprof         bool
}

// NewOpsRouter builds the handler of an operator-only listener: /healthz,
// /readyz and /metrics (and /debug/pprof when enabled), no API routes. It
// records no tally_http_* series, so probes of a worker never enter the
// API's request SLIs.
func NewOpsRouter(d OpsDeps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(requestContext(d.Log), recoverer())
	r.NoRoute(func(c *gin.Context) { abort(c, apperr.New(apperr.CodeNotFound, "no such route")) })
	r.NoMethod(func(c *gin.Context) {
		abort(c, apperr.New(apperr.CodeMethodNotAllowed, "method not allowed on this route"))
	})
	probes(r, d.Registry, d.Checks, d.OperatorToken)
	if d.Pprof {
		pprof.Register(r)
	}
	return r
}

// probes registers the routes every listener of a Tally process serves.
func probes(r gin.IRoutes, reg *prometheus.Registry, checks []Check, operatorToken string) {
	r.GET("/healthz", healthz)
	r.GET("/readyz", readyz(checks, operatorToken))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
}

func healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz probes every dependency in parallel and answers 200 only when all
// answer. A request bearing the operator token (Authorization: Bearer) sees
// each dependency's state and error; without it the body is the status.
func readyz(checks []Check, operatorToken string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		results := make(map[string]checkResult, len(checks))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ch := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := checkResult{Status: "up"}
				if err := ch.Fn(ctx); err != nil {
					r.Status, r.Error = "down", err.Error()
					if ch.Soft {
						r.Status = "degraded"
					}
					loggerFrom(c).Warn("readiness check failed", zap.String("check", ch.Name), zap.Error(err))
				}
				mu.Lock()
				results[ch.Name] = r
				mu.Unlock()
			}()
		}
		wg.Wait()
		status, code := "ready", http.StatusOK
		for _, r := range results {
			if r.Status == "down" {
				status, code = "not_ready", http.StatusServiceUnavailable
			}
		}
		if !isOperator(c, operatorToken) {
			c.JSON(code, gin.H{"status": status})
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(code, gin.H{"status": status, "checks": results})
	}
}

// isOperator reports whether the request bears the operator token; never
// when none is configured.
func isOperator(c *gin.Context, token string) bool {
	if token == "" {
		return false
	}
	got := c.GetHeader("Authorization")
	if len(got) < 7 || !strings.EqualFold(got[:7], "bearer ") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got[7:])), []byte(token)) == 1
}
