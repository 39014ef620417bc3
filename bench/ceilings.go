package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/redisx"
)

// ceiling is one bare-component measurement.
type ceiling struct {
	Name    string  `json:"name"`
	OpsPerS float64 `json:"ops_per_s"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	Errors  int     `json:"errors"`
}

// measureCeilings runs each bare component with the bench's concurrency, on
// the same machine and in the same run as the scenarios, so Tally's figures
// can be read as ratios of what the parts can do at all.
func (b *bench) measureCeilings(ctx context.Context) ([]ceiling, error) {
	var out []ceiling
	add := func(name string, ops float64, h interface {
		ValueAtQuantile(float64) int64
	}, errs int) {
		c := ceiling{Name: name, OpsPerS: ops, P50ms: float64(h.ValueAtQuantile(50)) / 1000,
			P99ms: float64(h.ValueAtQuantile(99)) / 1000, Errors: errs}
		b.logf("ceiling %-22s %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", name, c.OpsPerS, c.P50ms, c.P99ms, errs)
		out = append(out, c)
	}
	d := b.ceilingDur

	// Redis SET NX through go-redis.
	rdb := redisx.New(b.cfg.Redis)
	defer rdb.Close()
	prefix := "bench:" + b.runID + ":"
	ops, h, errs := closedLoop(ctx, b.conc, d, func(w, i int) error {
		return rdb.SetNX(ctx, fmt.Sprintf("%s%d:%d", prefix, w, i), "1", time.Minute).Err()
	})
	add("redis SET NX", ops, h, errs)

	// Kafka produce with Tally's writer settings (acks=all, 2 ms batches).
	kcfg := b.kafkaCfg()
	kcfg.VotesTopic = b.topic("ceiling")
	for _, c := range []kafkax.Config{kcfg, b.kafkaCfg()} {
		if err := kafkax.EnsureTopics(ctx, c); err != nil {
			return nil, err
		}
		waitReady(ctx, c)
	}
	w := kafkax.NewWriter(kcfg, kcfg.VotesTopic)
	defer w.Close()
	payload := bytes.Repeat([]byte("v"), 300) // about a vote message's size
	ops, h, errs = closedLoop(ctx, b.conc, d, func(wk, i int) error {
		key := id.New()
		return w.WriteMessages(ctx, kafka.Message{Key: key[:], Value: payload})
	})
	add("kafka produce", ops, h, errs)

	// gocql LWT INSERT IF NOT EXISTS into a table of the votes table's shape.
	s := b.cql.Session
	if err := s.Query(`CREATE TABLE IF NOT EXISTS bench_lwt (poll_id uuid, voter_id uuid, option_ids list<uuid>,
		vote_id uuid, request_id uuid, idempotency_key text, voted_at timestamp, anonymous boolean, ip text,
		user_agent text, PRIMARY KEY ((poll_id, voter_id)))`).WithContext(ctx).Exec(); err != nil {
		return nil, err
	}
	poll := id.New()
	opt := []id.ID{id.New()}
	ops, h, errs = closedLoop(ctx, b.conc, d, func(wk, i int) error {
		_, err := s.Query(`INSERT INTO bench_lwt (poll_id, voter_id, option_ids, vote_id, request_id, idempotency_key,
			voted_at, anonymous, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
			poll, id.New(), opt, id.New(), id.New(), "k", time.Now(),
			false, "127.0.0.1", "bench").WithContext(ctx).MapScanCAS(map[string]any{})
		return err
	})
	add("cassandra LWT", ops, h, errs)
	b.lwtCeiling = ops

	// A bare Gin JSON endpoint behind the same HTTP client.
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/bare"
	body := []byte(`{"option_id":"550e8400-e29b-41d4-a716-446655440000"}`)
	ops, h, errs = closedLoop(ctx, b.conc, d, func(wk, i int) error {
		resp, err := b.http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
	add("gin JSON endpoint", ops, h, errs)
	return out, nil
}

func waitReady(ctx context.Context, cfg kafkax.Config) {
	for range 100 {
		if kafkax.Ready(ctx, cfg) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
