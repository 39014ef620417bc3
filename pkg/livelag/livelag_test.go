package livelag

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

func TestBucket(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Millisecond, 0}, {2 * time.Millisecond, 1}, {3 * time.Millisecond, 2}, {4 * time.Millisecond, 2},
		{5 * time.Millisecond, 3}, {time.Second, 10}, {1025 * time.Millisecond, 11}, {100 * time.Hour, Buckets - 1},
	} {
		if got := Bucket(tt.d); got != tt.want {
			t.Errorf("Bucket(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	var a, b Hist
	for range 98 {
		a.Observe(3 * time.Millisecond) // bucket 2: ≤ 4 ms
	}
	b.Observe(900 * time.Millisecond) // bucket 10: ≤ 1,024 ms
	b.Observe(5 * time.Second)
	tests := []struct {
		name string
		hs   []Hist
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one source", []Hist{a}, Summary{Votes: 98, MaxMs: 3, P99Ms: 3}},
		{"two sources", []Hist{a, b}, Summary{Votes: 100, MaxMs: 5000, P99Ms: 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Merge(tt.hs); got != tt.want {
				t.Errorf("Merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

type memStore struct {
	mu   sync.Mutex
	fail bool
	rows map[id.ID]map[string]Hist
}

func (m *memStore) SaveLag(_ context.Context, pollID id.ID, source string, h Hist) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("down")
	}
	if m.rows[pollID] == nil {
		m.rows[pollID] = map[string]Hist{}
	}
	m.rows[pollID][source] = h
	return nil
}

func (m *memStore) LoadLag(_ context.Context, pollID id.ID) ([]Hist, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Hist
	for _, h := range m.rows[pollID] {
		out = append(out, h)
	}
	return out, nil
}

// A failed flush keeps the histogram dirty: the next flush writes it, and
// two processes' histograms of one poll merge.
func TestRecorderFlushesCumulativeHistogramsPerSource(t *testing.T) {
	st := &memStore{rows: map[id.ID]map[string]Hist{}, fail: true}
	pid := id.New()
	r1 := NewRecorder(st, zap.NewNop(), prometheus.NewRegistry())
	r2 := NewRecorder(st, zap.NewNop(), prometheus.NewRegistry())
	r1.Observe(pid, 10*time.Millisecond)
	r1.Flush(context.Background(), true)
	st.fail = false
	r1.Observe(pid, 20*time.Millisecond)
	r2.Observe(pid, 2*time.Second)
	r1.Flush(context.Background(), true)
	r2.Flush(context.Background(), true)
	hs, _ := st.LoadLag(context.Background(), pid)
	if got := Merge(hs); got.Votes != 3 || got.MaxMs != 2000 {
		t.Fatalf("merged %+v from %d sources, want 3 votes, max 2,000 ms", got, len(hs))
	}
}

// A poll with a trickle of votes is written once it has flushVotes new
// votes or after flushAfter, not at every tick.
func TestRecorderBatchesQuietPolls(t *testing.T) {
	st := &memStore{rows: map[id.ID]map[string]Hist{}}
	hot, quiet := id.New(), id.New()
	r := NewRecorder(st, zap.NewNop(), prometheus.NewRegistry())
	r.Observe(quiet, time.Millisecond)
	r.Flush(context.Background(), false) // first flush of a poll: its flushed time is zero, so written
	r.Observe(quiet, time.Millisecond)
	for range flushVotes {
		r.Observe(hot, time.Millisecond)
	}
	r.Flush(context.Background(), false)
	hs, _ := st.LoadLag(context.Background(), quiet)
	if got := Merge(hs).Votes; got != 1 {
		t.Fatalf("quiet poll written with %d votes, want 1 (its second vote waits for flushAfter)", got)
	}
	hs, _ = st.LoadLag(context.Background(), hot)
	if got := Merge(hs).Votes; got != flushVotes {
		t.Fatalf("hot poll written with %d votes, want %d", got, flushVotes)
	}
	r.Flush(context.Background(), true)
	hs, _ = st.LoadLag(context.Background(), quiet)
	if got := Merge(hs).Votes; got != 2 {
		t.Fatalf("after a full flush the quiet poll has %d votes, want 2", got)
	}
}
