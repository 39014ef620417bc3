package tally

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// memDrains is a RegionDrains in memory.
type memDrains struct {
	mu   sync.Mutex
	rows map[string]time.Time
}

func (m *memDrains) Record(_ context.Context, region string, through time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[region] = through
	return nil
}

func (m *memDrains) All(context.Context) (map[string]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]time.Time, len(m.rows))
	for k, v := range m.rows {
		out[k] = v
	}
	return out, nil
}

// TestFreezeWaitsForEveryRegion: this region's own queue is past a closed
// poll, but another region's recorded drain point is before the close
// grace; the freeze waits until that region records a later point.
func TestFreezeWaitsForEveryRegion(t *testing.T) {
	closed := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := closed.Add(time.Minute)
	cfg := ReconcileConfig{FinalizeDelay: 10 * time.Second}
	cutoff := closed.Add(cfg.FinalizeDelay + produceAllowance)
	offsets := func(context.Context) (map[int]PartitionProgress, error) {
		return map[int]PartitionProgress{0: {End: 5, Committed: 5}}, nil
	}
	for _, tc := range []struct {
		name   string
		region string
		rows   map[string]time.Time
		want   bool
	}{
		{"single region ignores rows", "", map[string]time.Time{"b": closed.Add(-time.Hour)}, true},
		{"no other region recorded", "a", map[string]time.Time{"a": now}, true},
		{"other region behind", "a", map[string]time.Time{"a": now, "b": cutoff.Add(-time.Millisecond)}, false},
		{"other region at the cutoff", "a", map[string]time.Time{"a": now, "b": cutoff}, true},
		{"own row behind does not matter", "a", map[string]time.Time{"a": closed.Add(-time.Hour), "b": now}, true},
		{"one of two others behind", "a", map[string]time.Time{"b": now, "c": closed}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReconciler(cfg, ReconcilerDeps{Offsets: offsets, Region: tc.region, Drains: &memDrains{rows: tc.rows},
				Log: zap.NewNop(), Now: func() time.Time { return now }, Metrics: prometheus.NewRegistry()})
			pf := &pendingFinal{closed: closed}
			if _, err := r.passed(context.Background(), pf); err != nil { // takes the watermark
				t.Fatal(err)
			}
			got, err := r.passed(context.Background(), pf)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("passed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRecordDrains: a drain point is recorded only once the group has
// committed past the end offsets read at that point, and it is the time
// taken before that read.
func TestRecordDrains(t *testing.T) {
	var (
		mu        sync.Mutex
		end, comm int64 = 10, 0
		clock           = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	)
	offsets := func(context.Context) (map[int]PartitionProgress, error) {
		mu.Lock()
		defer mu.Unlock()
		return map[int]PartitionProgress{0: {End: end, Committed: comm}}, nil
	}
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	drains := &memDrains{rows: map[string]time.Time{}}
	r := NewReconciler(ReconcileConfig{}, ReconcilerDeps{Offsets: offsets, Region: "a", Drains: drains,
		Log: zap.NewNop(), Now: now, Metrics: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.RecordDrains(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(3 * drainRecordEvery)
	if rows, _ := drains.All(ctx); len(rows) != 0 {
		t.Fatalf("recorded %v while the group is behind", rows)
	}
	mu.Lock()
	first := clock // every later snapshot is after this
	end, comm = 12, 10
	mu.Unlock()
	time.Sleep(2 * drainRecordEvery)
	rows, _ := drains.All(ctx)
	if through, ok := rows["a"]; !ok || through.After(first) {
		// Committed reached 10, the end of a snapshot taken before first;
		// end 12 is not yet committed, so no later point can be recorded.
		t.Fatalf("drain point %v (recorded %v), want one at or before %v", through, ok, first)
	}
	mu.Lock()
	comm = 12
	mu.Unlock()
	time.Sleep(3 * drainRecordEvery)
	rows, _ = drains.All(ctx)
	if !rows["a"].After(first) {
		t.Fatalf("drain point %v not advanced past %v once the group caught up", rows["a"], first)
	}
}

// TestLiveRunMeasuresOnlyWithAnotherRegion (issue 19 hole 14): a live
// reconciliation's fence is in this region's Redis and cannot hold another
// region's follow-up writers, so with another region recorded a live run
// reports drift and repairs nothing; alone (or without a region name) it
// repairs under its fence as before.
func TestLiveRunMeasuresOnlyWithAnotherRegion(t *testing.T) {
	for _, tc := range []struct {
		name       string
		region     string
		rows       map[string]time.Time
		wantRepair bool
	}{
		{"single region", "", nil, true},
		{"named region alone", "a", map[string]time.Time{"a": time.Now()}, true},
		{"another region recorded", "a", map[string]time.Time{"a": time.Now(), "b": time.Now()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := flaggedPoll()
			st := &slowStore{fakeStore: fakeStore{rows: rc, shards: NewCounts()}}
			reg := prometheus.NewRegistry()
			s := NewService(Config{}, st, downCache{}, &timedFence{}, nil, zap.NewNop(), time.Now, reg)
			var drains RegionDrains
			if tc.rows != nil {
				drains = &memDrains{rows: tc.rows}
			}
			r := NewReconciler(ReconcileConfig{}, ReconcilerDeps{Tally: s, Region: tc.region, Drains: drains,
				Polls: func(context.Context, id.ID) (*poll.Poll, error) { return p, nil },
				Log:   zap.NewNop(), Now: time.Now, Metrics: reg})
			if err := r.Handle(context.Background(), ReconcileRequest{PollID: p.ID, Reason: "scheduled"}); err != nil {
				t.Fatal(err)
			}
			if st.repaired != tc.wantRepair {
				t.Fatalf("repaired %v, want %v", st.repaired, tc.wantRepair)
			}
		})
	}
}
