package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// scenarioReport is one scenario's figures; the JSON file holds these.
type scenarioReport struct {
	Name            string             `json:"name"`
	Mode            string             `json:"mode"`
	OfferedPerS     float64            `json:"offered_per_s"`
	AchievedPerS    float64            `json:"achieved_2xx_per_s"`
	Sent            int                `json:"sent"`
	Codes           map[string]int     `json:"codes"`
	LatencyMs       map[string]float64 `json:"latency_ms"`
	DrainRowsPerS   float64            `json:"drain_rows_per_s"`
	PeakDrainPerS   float64            `json:"peak_drain_rows_per_s"`
	DrainAfterLoadS float64            `json:"drain_after_load_s"`
	// Drainer names who drained and at what concurrency.
	Drainer   string             `json:"drainer"`
	MaxLag    int64              `json:"max_consumer_lag"`
	LiveLagMs map[string]float64 `json:"live_lag_ms"`
	CPUCores  map[string]float64 `json:"cpu_cores"`
	Steps     []step             `json:"steps,omitempty"`
	// AcceptCPUMicros is the API process's CPU time per accepted vote
	// (accept-only scenarios: no worker in the process).
	AcceptCPUMicros float64 `json:"accept_cpu_us_per_vote,omitempty"`
	// AcceptAllocBytes is the API's heap allocation per accepted vote
	// (the sampler's own reads of results and metrics included).
	AcceptAllocBytes float64 `json:"accept_alloc_bytes_per_vote,omitempty"`
	// Watch is what live watchers saw (scenarios run with watchers).
	Watch *watchReport `json:"live_watchers,omitempty"`
	// Webhooks is the webhook-hang comparison (its hooked phase).
	Webhooks *webhookReport `json:"webhooks,omitempty"`
	Timeline []sample       `json:"timeline"`
	// PerSecond is the run second by second from the load's start: what
	// the chart draws.
	PerSecond []perSecond `json:"per_second"`
	// LoadAtStart is the machine's load when the scenario began.
	LoadAtStart loadAvg `json:"load_at_start"`
	// IdleAPICores is the API's CPU with only the sampler running
	// (accept-only scenarios), subtracted from the per-vote figures.
	IdleAPICores float64 `json:"api_idle_cores_with_sampler,omitempty"`
	// WarmupS is the named warm-up left out of accepted_p99_after_warmup.
	WarmupS float64 `json:"warmup_s"`
	Verdict verdict `json:"verdict"`
}

// perSecond is one second of a scenario.
type perSecond struct {
	T        int     `json:"t_s"`
	Accepted int     `json:"accepted"`
	Shed     int     `json:"shed"`
	Other    int     `json:"other"`
	P50ms    float64 `json:"accepted_p50_ms"`
	P99ms    float64 `json:"accepted_p99_ms"`
	// DrainRows is the rows the server recorded in this second.
	DrainRows float64 `json:"drain_rows"`
	// LiveLagS is the age of the oldest vote accepted on the hot poll and
	// not yet in its live total, at worst within the second.
	LiveLagS float64 `json:"live_lag_s"`
}

// perSecondSeries joins the load's per-second answers with the sampler's
// timeline; offset is how many seconds the sampler started before the load.
func perSecondSeries(st *loadStats, tl []sample, offset float64) []perSecond {
	n := len(st.secs)
	if len(tl) > 0 {
		n = max(n, int(tl[len(tl)-1].T-offset)+1)
	}
	out := make([]perSecond, n)
	for k := range out {
		out[k].T = k
		if k < len(st.secs) {
			sec := st.secs[k]
			out[k].Accepted, out[k].Shed, out[k].Other = sec.Accepted, sec.Shed, sec.Other
			if sec.ok.TotalCount() > 0 {
				out[k].P50ms, out[k].P99ms = ms(sec.ok.ValueAtQuantile(50)), ms(sec.ok.ValueAtQuantile(99))
			}
		}
	}
	lags := lagSeries(tl)
	last := map[int]float64{}
	for i, s := range tl {
		k := int(s.T - offset)
		if k < 0 || k >= n {
			continue
		}
		out[k].LiveLagS = max(out[k].LiveLagS, lags[i])
		last[k] = s.Recorded
	}
	prev := 0.0
	for i, s := range tl {
		if s.T-offset < 0 {
			prev = tl[i].Recorded
		}
	}
	for k := range out {
		if r, ok := last[k]; ok {
			out[k].DrainRows = max(r-prev, 0)
			prev = r
		}
	}
	return out
}

// lagSeries gives, for each sample, the age of the oldest accepted vote
// the live total did not include yet: the first sample whose accepted
// count exceeded this sample's live total is when that vote was accepted.
func lagSeries(tl []sample) []float64 {
	out := make([]float64, len(tl))
	j := 0
	for i, s := range tl {
		for j < i && tl[j].Accepted <= s.Live {
			j++
		}
		if tl[j].Accepted > s.Live && j <= i {
			out[i] = s.T - tl[j].T
		}
	}
	return out
}

func (b *bench) report(p plan, st *loadStats, tl []sample, accepted []cast, drain time.Duration, cpu map[string]float64) *scenarioReport {
	loadSecs := st.end.Sub(st.start).Seconds()
	r := &scenarioReport{
		Name: p.Name, Mode: p.Mode, OfferedPerS: b.rate, Sent: st.sent, Codes: st.codes,
		AchievedPerS: float64(len(accepted)) / loadSecs, DrainAfterLoadS: drain.Seconds(), CPUCores: cpu,
		Timeline: tl,
		LatencyMs: map[string]float64{
			"p50": ms(st.hist.ValueAtQuantile(50)), "p90": ms(st.hist.ValueAtQuantile(90)),
			"p99": ms(st.hist.ValueAtQuantile(99)), "p99.9": ms(st.hist.ValueAtQuantile(99.9)),
			"max": ms(st.hist.Max()), "accepted_p99": ms(st.ok.ValueAtQuantile(99)),
			"accepted_p99_after_warmup": ms(st.okWarm.ValueAtQuantile(99)),
		},
	}
	// Drain: rows recorded between the first and the last sample that saw
	// progress; peak: the best one-second window.
	first, last := -1, -1
	for i := 1; i < len(tl); i++ {
		if tl[i].Recorded > tl[i-1].Recorded {
			if first < 0 {
				first = i - 1
			}
			last = i
		}
		r.MaxLag = max(r.MaxLag, tl[i].Lag)
		if i >= 4 {
			r.PeakDrainPerS = max(r.PeakDrainPerS, (tl[i].Recorded-tl[i-4].Recorded)/(tl[i].T-tl[i-4].T))
		}
	}
	if first >= 0 && last > first {
		r.DrainRowsPerS = (tl[last].Recorded - tl[first].Recorded) / (tl[last].T - tl[first].T)
	}
	r.LiveLagMs = liveLag(tl)
	return r
}

func ms(us int64) float64 { return float64(us) / 1000 }

// liveLag estimates, for accepted votes on the hot poll, how long after
// acceptance the live tally included them, from the 250 ms timeline.
func liveLag(tl []sample) map[string]float64 {
	if len(tl) == 0 || tl[len(tl)-1].Accepted == 0 {
		return nil
	}
	total := tl[len(tl)-1].Accepted
	step := max(total/1000, 1)
	var lags []float64
	for k := step; k <= total; k += step {
		ta, tv := -1.0, -1.0
		for _, s := range tl {
			if ta < 0 && s.Accepted >= k {
				ta = s.T
			}
			if tv < 0 && s.Live >= k {
				tv = s.T
			}
		}
		if ta >= 0 && tv >= 0 {
			lags = append(lags, max(tv-ta, 0)*1000)
		}
	}
	if len(lags) == 0 {
		return nil
	}
	sort.Float64s(lags)
	q := func(p float64) float64 { return lags[min(int(p*float64(len(lags))), len(lags)-1)] }
	return map[string]float64{"p50": q(0.5), "p99": q(0.99), "max": lags[len(lags)-1], "resolution": 250}
}

// printTable writes the human-readable report.
func printTable(w io.Writer, conc int, start loadAvg, ceilings []ceiling, bare []bareStep, warmup time.Duration, reps []*scenarioReport) {
	ceil := map[string]float64{}
	validity := "valid"
	if !start.Valid() {
		validity = fmt.Sprintf("INVALID (above %.1f: do not cite)", maxStartLoad)
	}
	fmt.Fprintf(w, "\nLoad average at start: %.2f %.2f %.2f — run %s\n", start.One, start.Five, start.Fifteen, validity)
	fmt.Fprintln(w, "\nCeilings (bare components, same machine, same run, same concurrency)")
	for _, c := range ceilings {
		ceil[c.Name] = c.OpsPerS
		fmt.Fprintf(w, "  %-20s %9.0f ops/s   p50 %6.2f ms   p99 %6.2f ms", c.Name, c.OpsPerS, c.P50ms, c.P99ms)
		if c.CPUMicros > 0 {
			fmt.Fprintf(w, "   %.1f µs CPU per request", c.CPUMicros)
		}
		fmt.Fprintln(w)
	}
	bareAt := map[float64]bareStep{}
	if len(bare) > 0 {
		fmt.Fprintln(w, "  bare Gin open loop, own process (the API's CPU ratio is taken against the same offered rate):")
	}
	for _, s := range bare {
		bareAt[s.OfferedPerS] = s
		fmt.Fprintf(w, "    %6.0f/s offered: %.1f µs CPU per request, p99 %.2f ms\n", s.OfferedPerS, s.CPUMicros, s.P99ms)
	}
	front := min(nz(ceil["redis SET NX"]), nz(ceil["kafka produce"]), nz(ceil["gin JSON endpoint"]))
	for _, r := range reps {
		fmt.Fprintf(w, "\nScenario %s (%s)\n", r.Name, r.Mode)
		fmt.Fprintf(w, "  offered %.0f/s, sent %d, achieved %.0f 2xx/s", r.OfferedPerS, r.Sent, r.AchievedPerS)
		if r.Mode == "async" {
			fmt.Fprintf(w, " = %.0f%% of the slowest front-path ceiling (%.0f/s)", 100*r.AchievedPerS/front, front)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  latency ms: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
			r.LatencyMs["p50"], r.LatencyMs["p90"], r.LatencyMs["p99"], r.LatencyMs["p99.9"], r.LatencyMs["max"])
		fmt.Fprintf(w, "  responses: %s\n", codes(r.Codes))
		if refused := r.Codes["OVERLOADED"]; refused > 0 {
			fmt.Fprintf(w, "  shed: %.1f%% answered 503 OVERLOADED; p99 of the accepted %.1f ms\n",
				100*float64(refused)/float64(r.Sent), r.LatencyMs["accepted_p99"])
		}
		fmt.Fprintf(w, "  accepted p99 after each step's first %s (warm-up, named): %.1f ms (all accepted: %.1f ms)\n",
			warmup, r.LatencyMs["accepted_p99_after_warmup"], r.LatencyMs["accepted_p99"])
		if r.IdleAPICores > 0 {
			fmt.Fprintf(w, "  API idle under the sampler: %.3f cores, subtracted from the per-vote CPU below\n", r.IdleAPICores)
		}
		for _, s := range r.Steps {
			if len(r.Steps) < 2 && r.Name != "burst" && r.Name != "accept" {
				break
			}
			fmt.Fprintf(w, "  step %6.0f/s offered: %6.0f 2xx/s  p50 %7.1f ms  p99 %7.1f ms  accepted p99 after warm-up %7.1f ms  shed %d  (%s)\n",
				s.OfferedPerS, s.AchievedPerS, s.LatencyMs["p50"], s.LatencyMs["p99"], s.LatencyMs["ok_p99_after_warmup"], s.Shed, codes(s.Codes))
			if s.APICPUMicros > 0 {
				fmt.Fprintf(w, "    API CPU %.0f µs per accepted vote = %.1f–%.1f× the stack's floor (85–105 µs)",
					s.APICPUMicros, s.APICPUMicros/105, s.APICPUMicros/85)
				if g, ok := bareAt[s.OfferedPerS]; ok && g.CPUMicros > 0 {
					fmt.Fprintf(w, " = %.2f× bare Gin's %.1f µs at %.0f/s", s.APICPUMicros/g.CPUMicros, g.CPUMicros, s.OfferedPerS)
				} else {
					fmt.Fprint(w, " (no bare Gin figure at this rate: add it to --bare-rates)")
				}
				if !s.Counts {
					fmt.Fprintf(w, " — DOES NOT COUNT: %.1f%% accepted < %.0f%%", 100*float64(s.Accepted)/float64(max(s.Sent, 1)), 100*minAcceptedShare)
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "    load generator: %.1f µs CPU per request sent\n", s.LoadgenCPUMicros)
		}
		lwt := nz(ceil["cassandra LWT"])
		fmt.Fprintf(w, "  drain (%s): %.0f rows/s sustained (%.0f%% of bare LWT %.0f/s at concurrency %d), peak %.0f rows/s, %.1f s after load, max lag %d\n",
			r.Drainer, r.DrainRowsPerS, 100*r.DrainRowsPerS/lwt, lwt, conc, r.PeakDrainPerS, r.DrainAfterLoadS, r.MaxLag)
		if r.LiveLagMs != nil {
			fmt.Fprintf(w, "  live-tally lag ms (250 ms resolution): p50 %.0f  p99 %.0f  max %.0f\n",
				r.LiveLagMs["p50"], r.LiveLagMs["p99"], r.LiveLagMs["max"])
		}
		if x := r.Watch; x != nil {
			fmt.Fprintf(w, "  live watchers: %d ws + %d sse, %d opened, %d ended early; %.2f frames per watcher per s; "+
				"server %.0f frames, %.0f re-reads, %.1f ms CPU per 1,000 frames (votes included)\n",
				x.WebSockets, x.Streams, x.Opened, x.Ended, x.FramesPerWatcherPerS, x.ServerFrames, x.ServerRereads, x.ServerCPUPerKFrameMs)
			if x.AsOfLagMs != nil {
				fmt.Fprintf(w, "  as_of lag ms (frame received − as_of): p50 %.0f  p99 %.0f  max %.0f\n",
					x.AsOfLagMs["p50"], x.AsOfLagMs["p99"], x.AsOfLagMs["max"])
			}
			fmt.Fprintf(w, "  API resident memory: %.0f MiB before the watchers, at most %.0f MiB during the watch\n",
				x.APIRSSStartMB, x.APIRSSMaxMB)
		}
		if r.Webhooks != nil {
			fmt.Fprintf(w, "  %s\n", r.Webhooks)
		}
		if l := r.LoadAtStart; !l.Valid() {
			fmt.Fprintf(w, "  INVALID: 1-minute load %.2f at the scenario's start\n", l.One)
		}
		fmt.Fprintf(w, "  cpu cores: %s\n", cores(r.CPUCores))
		if r.AcceptCPUMicros > 0 {
			fmt.Fprintf(w, "  API per accepted vote (no worker in the process, idle cost subtracted): %.0f µs CPU, %.1f KiB allocated\n",
				r.AcceptCPUMicros, r.AcceptAllocBytes/1024)
		}
		fmt.Fprintf(w, "  VERDICT: %s\n", r.Verdict.String())
	}
}

func nz(v float64) float64 {
	if v <= 0 {
		return 1
	}
	return v
}

func codes(m map[string]int) string { return joinSorted(m, "%s=%d") }

func cores(m map[string]float64) string { return joinSorted(m, "%s %.2f") }

// joinSorted renders a map as "key value" pairs in key order.
func joinSorted[V any](m map[string]V, format string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return strings.Join(parts, ", ")
}
