package main

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// result is one request's outcome.
type result struct {
	status int
	code   string
}

// loadStats collects latency and outcomes of a run.
type loadStats struct {
	mu   sync.Mutex
	hist *hdrhistogram.Histogram
	// ok holds the latencies of 2xx answers only (the overload scenario's
	// figure: how fast the accepted ones were while the rest were shed).
	ok *hdrhistogram.Histogram
	// okWarm holds 2xx latencies of requests due after the warm-up window
	// (the first --warmup of each open-loop run): the accepted p99 the
	// report judges, with start-up named and left out rather than mixed in.
	okWarm *hdrhistogram.Histogram
	codes  map[string]int
	sent   int
	start  time.Time
	end    time.Time
	// origin is the scenario's start; secs[k] holds the requests due in
	// its k-th second (the chart's per-second series).
	origin time.Time
	secs   []second
}

// second is one second of a run: what was accepted and shed, and how fast
// the accepted ones were answered.
type second struct {
	Accepted int
	Shed     int
	Other    int
	ok       *hdrhistogram.Histogram
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

func newLoadStats() *loadStats {
	return &loadStats{hist: newHist(), ok: newHist(), okWarm: newHist(), codes: map[string]int{}}
}

// record folds in one answer to a request that was due at due.
func (s *loadStats) record(due time.Time, warm bool, latency time.Duration, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := latency.Microseconds()
	_ = s.hist.RecordValue(us)
	k := max(int(due.Sub(s.origin)/time.Second), 0)
	for len(s.secs) <= k {
		s.secs = append(s.secs, second{ok: newHist()})
	}
	sec := &s.secs[k]
	switch {
	case r.status/100 == 2:
		_ = s.ok.RecordValue(us)
		if warm {
			_ = s.okWarm.RecordValue(us)
		}
		sec.Accepted++
		_ = sec.ok.RecordValue(us)
	case r.code == "OVERLOADED":
		sec.Shed++
	default:
		sec.Other++
	}
	key := r.code
	if key == "" {
		key = statusText(r.status)
	}
	s.codes[key]++
}

// openLoop fires fn n times at rate per second, each call on its own
// goroutine up to maxInFlight. Latency is measured from the moment the
// request was due, not from when it was sent, so a slow server cannot hide
// its queueing (no coordinated omission).
//
// Answers to requests due in the first warmup are kept out of okWarm;
// origin anchors the per-second series (the scenario's start).
func openLoop(ctx context.Context, origin time.Time, warmup time.Duration, rate float64, n, maxInFlight int, fn func(i int) result) *loadStats {
	st := newLoadStats()
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	st.start = time.Now()
	st.origin = origin
	if origin.IsZero() {
		st.origin = st.start
	}
	warmEnd := st.start.Add(warmup)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := st.start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		// When saturated this waits for a slot; the request's latency keeps
		// counting from when it was due.
		sem <- struct{}{}
		st.sent++
		wg.Add(1)
		go func(i int, due time.Time) {
			defer func() { <-sem; wg.Done() }()
			r := fn(i)
			st.record(due, !due.Before(warmEnd), time.Since(due), r)
		}(i, due)
	}
	wg.Wait()
	st.end = time.Now()
	return st
}

// closedLoop runs fn from conc goroutines for d and returns calls/s and the
// latency histogram: the shape of a ceiling measurement.
func closedLoop(ctx context.Context, conc int, d time.Duration, fn func(worker, i int) error) (float64, *hdrhistogram.Histogram, int) {
	hist := hdrhistogram.New(1, 60_000_000, 3)
	var (
		mu     sync.Mutex
		n      int
		errs   int
		wg     sync.WaitGroup
		ctxEnd = time.Now().Add(d)
	)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(ctxEnd) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				err := fn(w, i)
				lat := time.Since(t0)
				mu.Lock()
				n++
				if err != nil {
					errs++
				} else {
					_ = hist.RecordValue(lat.Microseconds())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return float64(n-errs) / time.Since(start).Seconds(), hist, errs
}

// merge folds o into s (a ladder's steps into the whole run).
func (s *loadStats) merge(o *loadStats) {
	s.hist.Merge(o.hist)
	s.ok.Merge(o.ok)
	s.okWarm.Merge(o.okWarm)
	if s.origin.IsZero() {
		s.origin = o.origin
	}
	for k, sec := range o.secs {
		for len(s.secs) <= k {
			s.secs = append(s.secs, second{ok: newHist()})
		}
		d := &s.secs[k]
		d.Accepted += sec.Accepted
		d.Shed += sec.Shed
		d.Other += sec.Other
		d.ok.Merge(sec.ok)
	}
	for k, v := range o.codes {
		s.codes[k] += v
	}
	s.sent += o.sent
	if s.start.IsZero() {
		s.start = o.start
	}
	s.end = o.end
}

func statusText(s int) string {
	switch s {
	case 0:
		return "transport_error"
	case 200:
		return "200_recorded"
	case 202:
		return "202_accepted"
	}
	return "http_" + strconv.Itoa(s)
}
