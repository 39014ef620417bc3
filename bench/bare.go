package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/spf13/cobra"
)

// bareStep is bare Gin at one offered rate, open loop, in its own process:
// the denominator of the API's CPU ratio at that rate.
type bareStep struct {
	OfferedPerS float64 `json:"offered_per_s"`
	Answered    int64   `json:"answered"`
	// CPUMicros is the bare server's CPU time per answered request.
	CPUMicros float64 `json:"cpu_us_per_req"`
	P99ms     float64 `json:"p99_ms"`
}

// bareGinHandler is the ceiling's endpoint: bind the same JSON a vote
// carries and answer a 202 of a vote's shape, nothing else.
func bareGinHandler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/bare", func(c *gin.Context) {
		var v map[string]any
		if err := c.ShouldBindJSON(&v); err != nil {
			c.AbortWithStatus(400)
			return
		}
		c.JSON(202, gin.H{"status": "accepted", "request_id": "00000000-0000-0000-0000-000000000000"})
	})
	return r
}

// newBareGinCmd is `bench bare-gin`: the bare endpoint in a process of its
// own, so its CPU can be read apart from the load generator's. It prints
// its address on the first line of stdout and serves until interrupted.
func newBareGinCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "bare-gin",
		Short:  "Serve the bare Gin ceiling endpoint (the bench starts this itself)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			fmt.Println(ln.Addr().String())
			srv := &http.Server{Handler: bareGinHandler(), ReadHeaderTimeout: 5 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); _ = srv.Close() }()
			if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
}

// measureBareGin starts the bare endpoint as a child process and measures
// it twice, both through the bench's HTTP client: saturated (closed loop at
// the bench's concurrency, the ceiling) and open loop at each given rate,
// where its CPU per request is what the API's CPU per vote is compared
// with. The same regime on both sides is the point: a closed-loop ceiling
// costs less per request than an open-loop trickle (fewer wake-ups).
func (b *bench) measureBareGin(ctx context.Context, rates []float64, each time.Duration) (ceiling, []bareStep, error) {
	self, err := os.Executable()
	if err != nil {
		return ceiling{}, nil, err
	}
	cmd := exec.CommandContext(ctx, self, "bare-gin")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return ceiling{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return ceiling{}, nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return ceiling{}, nil, fmt.Errorf("bare-gin did not say its address: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/bare"
	pid := cmd.Process.Pid
	body := []byte(`{"option_id":"550e8400-e29b-41d4-a716-446655440000"}`)
	post := func() error {
		resp, err := b.http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("bare gin: status %d", resp.StatusCode)
		}
		return nil
	}

	c0 := cpuSeconds(pid)
	ops, h, errs := closedLoop(ctx, b.conc, b.ceilingDur, func(int, int) error { return post() })
	sat := ceiling{Name: "gin JSON endpoint", OpsPerS: ops, P50ms: ms(h.ValueAtQuantile(50)), P99ms: ms(h.ValueAtQuantile(99)),
		Errors: errs}
	if n := h.TotalCount(); n > 0 {
		sat.CPUMicros = (cpuSeconds(pid) - c0) * 1e6 / float64(n)
	}

	var steps []bareStep
	for _, rate := range rates {
		n := int(rate * each.Seconds())
		c0 := cpuSeconds(pid)
		st := openLoop(ctx, time.Time{}, 0, rate, n, b.maxInFlight, func(int) result {
			if err := post(); err != nil {
				return result{}
			}
			return result{status: http.StatusAccepted}
		})
		bs := bareStep{OfferedPerS: rate, Answered: st.ok.TotalCount(), P99ms: ms(st.hist.ValueAtQuantile(99))}
		if bs.Answered > 0 {
			bs.CPUMicros = (cpuSeconds(pid) - c0) * 1e6 / float64(bs.Answered)
		}
		b.logf("bare gin open loop %6.0f/s: %d answered, %.1f µs CPU per request, p99 %.2f ms",
			rate, bs.Answered, bs.CPUMicros, bs.P99ms)
		steps = append(steps, bs)
	}
	return sat, steps, nil
}
