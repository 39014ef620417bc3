package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// Check is one dependency probed by /readyz.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Soft checks are reported as "degraded" without failing readiness.
	Soft bool
}

// checkResult is what /readyz shows of a dependency: its state only. The
// error (addresses, driver messages) goes to the log, not to whoever asks.
type checkResult struct {
	Status string `json:"status"`
}

func healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz probes every dependency in parallel and answers 200 only when all
// answer. The body names each one so an operator sees which is down.
func readyz(checks []Check) gin.HandlerFunc {
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
					r.Status = "down"
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
		c.JSON(code, gin.H{"status": status, "checks": results})
	}
}
