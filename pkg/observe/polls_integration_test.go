//go:build integration

package observe_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/observe"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/testenv"
)

// gauge scrapes reg and returns tally_polls_active, or false when the
// scrape left it out.
func gauge(t *testing.T, reg *prometheus.Registry) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "tally_polls_active" {
			return f.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestActivePollsDistinctAcrossProcesses runs two "pods" on the real Redis,
// each having counted votes on overlapping polls: both report the distinct
// union (3), where a per-process set gave 2 under max() and 4 under sum();
// polls idle past the window leave the count, an older sighting never
// revives a poll, and a process that cannot reach Redis leaves the series
// out.
func TestActivePollsDistinctAcrossProcesses(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	key := "polls:active:test:" + id.New().String()
	t.Cleanup(func() { rdb.Del(context.Background(), key) })

	now := time.Now()
	clock := func() time.Time { return now }
	cfg := observe.ActivePollsConfig{Window: 5 * time.Minute}
	set := redisx.NewActivePollSet(rdb, key, 2*cfg.Window)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	podA := observe.NewActivePolls(regA, set, cfg, zap.NewNop(), clock)
	podB := observe.NewActivePolls(regB, set, cfg, zap.NewNop(), clock)

	p1, p2, p3 := id.New(), id.New(), id.New()
	podA.Seen(p1)
	podA.Seen(p2)
	podB.Seen(p2)
	podB.Seen(p3)
	if v, ok := gauge(t, regA); !ok || v != 2 {
		t.Fatalf("pod A before B's scrape = %v (exported %v), want 2", v, ok)
	}
	if v, _ := gauge(t, regB); v != 3 {
		t.Fatalf("pod B = %v, want 3 distinct polls", v)
	}
	if v, _ := gauge(t, regA); v != 3 {
		t.Fatalf("pod A after B merged = %v, want 3 (the same figure on every pod)", v)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 2*cfg.Window {
		t.Errorf("shared set TTL = %v, want within 2 × the window", ttl)
	}

	// Four minutes on, B counts p1 again; two more and only p1 is recent.
	now = now.Add(4 * time.Minute)
	podB.Seen(p1)
	if v, _ := gauge(t, regB); v != 3 {
		t.Fatalf("after 4 min = %v, want 3", v)
	}
	// A pod whose sighting of p2 is older than the set's (a late batch)
	// must not lower its score.
	stale := observe.NewActivePolls(prometheus.NewRegistry(), set, cfg, zap.NewNop(),
		func() time.Time { return now.Add(-4 * time.Minute) })
	stale.Seen(p1)
	if _, err := stale.Count(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if v, _ := gauge(t, regA); v != 1 {
		t.Fatalf("after 6 min = %v, want 1 (p2 and p3 idle past the window)", v)
	}
	if got := rdb.ZRange(ctx, key, 0, -1).Val(); len(got) != 1 || got[0] != p1.String() {
		t.Fatalf("shared set = %v, want only %s", got, p1)
	}

	// Redis unreachable: the series is left out (the sighting is kept for
	// the next scrape: TestActivePollsKeepsSightingsWhileRedisIsDown).
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	regC := prometheus.NewRegistry()
	podC := observe.NewActivePolls(regC, redisx.NewActivePollSet(down, key, time.Minute), cfg, zap.NewNop(), clock)
	podC.Seen(id.New())
	if v, ok := gauge(t, regC); ok {
		t.Fatalf("unreachable Redis still exported tally_polls_active = %v", v)
	}
}
