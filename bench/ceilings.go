package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

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
	// CPUMicros is the server's CPU per request where the bench can read
	// it apart from its own (bare Gin, in a child process).
	CPUMicros float64 `json:"cpu_us_per_op,omitempty"`
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

	// A bare Gin JSON endpoint in its own process, behind the same HTTP
	// client: saturated, then open loop at the rates the API is offered.
	sat, steps, err := b.measureBareGin(ctx, b.bareRates, b.bareDur)
	if err != nil {
		return nil, fmt.Errorf("bare gin: %w", err)
	}
	b.logf("ceiling %-22s %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  (%.1f µs CPU per request, saturated)",
		sat.Name, sat.OpsPerS, sat.P50ms, sat.P99ms, sat.Errors, sat.CPUMicros)
	out = append(out, sat)
	b.bareSteps = steps
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
