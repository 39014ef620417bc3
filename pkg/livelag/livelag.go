// Package livelag measures, per poll, how far the live tally trailed the
// votes it accepted: the time from the API accepting a vote to the worker
// applying it (its counters move then). Each worker process keeps a small
// histogram per poll and writes it to the store every second under its own
// source name; a poll's final reconciliation merges every source's
// histogram into the certified tally's drift history (max and p99 lag).
package livelag

import (
	"context"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// Buckets is the histogram's size: bucket i counts lags of at most 2^i ms
// (the last one everything longer), so 1 ms to about 2.3 hours in 24
// doublings. A quantile read from it is the bucket's upper bound: at most
// twice the true value, never less.
const Buckets = 24

// Hist is one source's lag histogram for one poll.
type Hist struct {
	Counts [Buckets]int64
	// MaxMs is the longest lag seen, exact.
	MaxMs int64
}

// Bucket is the bucket a lag falls in.
func Bucket(d time.Duration) int {
	ms := d.Milliseconds()
	if ms <= 1 {
		return 0
	}
	return min(bits.Len64(uint64(ms-1)), Buckets-1)
}

// Observe counts one vote's lag.
func (h *Hist) Observe(d time.Duration) {
	h.Counts[Bucket(d)]++
	h.MaxMs = max(h.MaxMs, d.Milliseconds())
}

// Summary is a poll's lag over every source.
type Summary struct {
	Votes int64 `json:"votes"`
	MaxMs int64 `json:"max_ms"`
	// P99Ms is the upper bound of the bucket holding the 99th percentile.
	P99Ms int64 `json:"p99_ms"`
}

// Merge sums the histograms of every source of a poll.
func Merge(hs []Hist) Summary {
	var all Hist
	for _, h := range hs {
		for i, n := range h.Counts {
			all.Counts[i] += n
		}
		all.MaxMs = max(all.MaxMs, h.MaxMs)
	}
	var s Summary
	for _, n := range all.Counts {
		s.Votes += n
	}
	s.MaxMs = all.MaxMs
	if s.Votes == 0 {
		return s
	}
	// The rank of the 99th percentile, rounded up: the smallest bucket
	// holding at least 99 % of the votes.
	want, seen := (s.Votes*99+99)/100, int64(0)
	for i, n := range all.Counts {
		seen += n
		if seen >= want {
			s.P99Ms = min(int64(1)<<i, s.MaxMs)
			break
		}
	}
	return s
}

// Store keeps each source's histogram per poll (pkg/cassandra implements
// it).
type Store interface {
	// SaveLag writes a source's whole histogram for a poll (it replaces
	// the source's last one: the histogram is cumulative).
	SaveLag(ctx context.Context, pollID id.ID, source string, h Hist) error
	// LoadLag reads every source's histogram of a poll.
	LoadLag(ctx context.Context, pollID id.ID) ([]Hist, error)
}

// Recorder keeps this process's histograms and flushes the ones that
// changed.
type Recorder struct {
	store  Store
	source string
	log    *zap.Logger
	mu     sync.Mutex
	polls  map[id.ID]*entry
	fails  prometheus.Counter
}

type entry struct {
	h Hist
	// fresh counts the votes observed since the last flush.
	fresh   int64
	seen    time.Time
	flushed time.Time
}

const (
	// idleFor is how long a poll with no new vote stays in memory after
	// its last flush.
	idleFor = 10 * time.Minute
	// flushVotes and flushAfter bound what a flush leaves unwritten: a
	// poll's histogram is written once it has this many new votes, or new
	// votes this old. A hot poll is written every flush interval; a poll
	// with a trickle at most every flushAfter, so many quiet polls cost
	// few writes (under the close grace, so a freeze sees them).
	flushVotes = 64
	flushAfter = 5 * time.Second
)

// NewRecorder builds a recorder named after this process (host, pid and a
// random suffix, so a restarted worker writes a new source rather than
// replacing its predecessor's histogram).
func NewRecorder(store Store, log *zap.Logger, reg prometheus.Registerer) *Recorder {
	host, _ := os.Hostname()
	r := &Recorder{store: store, log: log, polls: map[id.ID]*entry{},
		source: host + "/" + strconv.Itoa(os.Getpid()) + "/" + id.New().String()[:8],
		fails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_live_lag_flush_failures_total",
			Help: "Per-poll live-lag histograms this process could not write (the next flush writes them again).",
		})}
	reg.MustRegister(r.fails)
	return r
}

// Observe counts one applied vote of a poll, d after its acceptance.
func (r *Recorder) Observe(pollID id.ID, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.polls[pollID]
	if e == nil {
		e = &entry{}
		r.polls[pollID] = e
	}
	e.h.Observe(d)
	e.fresh++
	e.seen = time.Now()
}

// Flush writes the histograms with enough new votes, or old enough ones
// (all with new votes when all is set), and forgets polls idle for a while.
func (r *Recorder) Flush(ctx context.Context, all bool) {
	now := time.Now()
	r.mu.Lock()
	todo := map[id.ID]Hist{}
	owed := map[id.ID]int64{}
	for pid, e := range r.polls {
		switch {
		case e.fresh > 0 && (all || e.fresh >= flushVotes || now.Sub(e.flushed) >= flushAfter):
			todo[pid], owed[pid] = e.h, e.fresh
			e.fresh, e.flushed = 0, now
		case e.fresh == 0 && now.Sub(e.seen) > idleFor:
			delete(r.polls, pid)
		}
	}
	r.mu.Unlock()
	for pid, h := range todo {
		if err := r.store.SaveLag(ctx, pid, r.source, h); err != nil {
			r.fails.Inc()
			r.log.Debug("flush live lag", zap.Stringer("poll_id", pid), zap.Error(err))
			r.mu.Lock()
			if e := r.polls[pid]; e != nil {
				e.fresh += owed[pid]
			}
			r.mu.Unlock()
		}
	}
}

// Run flushes every interval until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			r.Flush(fctx, true)
			cancel()
			return
		case <-t.C:
			r.Flush(ctx, false)
		}
	}
}
