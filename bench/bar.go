package main

import (
	"fmt"
	"io"
)

// barLine is one line of the front door's bar (issue 20's "done when"),
// judged from this run's own figures and ceilings.
type barLine struct {
	Line   string `json:"line"`
	Figure string `json:"figure"`
	Pass   bool   `json:"pass"`
	// Judged is false when the run had no scenario that measures the line.
	Judged bool `json:"judged"`
}

// frontDoorBar judges each line the front door is held to, as ratios to
// the ceilings measured in the same run.
func frontDoorBar(reps []*scenarioReport, ceilings []ceiling, bare []bareStep) []barLine {
	ceil := map[string]float64{}
	for _, c := range ceilings {
		ceil[c.Name] = c.OpsPerS
	}
	bareAt := map[float64]float64{}
	for _, s := range bare {
		bareAt[s.OfferedPerS] = s.CPUMicros
	}
	byName := map[string]*scenarioReport{}
	for _, r := range reps {
		byName[r.Name] = r
	}
	var out []barLine
	ratio := func(rate, limit float64) barLine {
		l := barLine{Line: fmt.Sprintf("API CPU per accepted vote ≤ %.1f× bare Gin's per request at %.0f/s (step counts only at ≥ 99 %% accepted)", limit, rate)}
		r := byName["accept"]
		if r == nil {
			return l
		}
		for _, s := range r.Steps {
			if s.OfferedPerS != rate || s.APICPUMicros == 0 || bareAt[rate] == 0 {
				continue
			}
			x := s.APICPUMicros / bareAt[rate]
			l.Judged = true
			l.Pass = s.Counts && x <= limit
			l.Figure = fmt.Sprintf("%.0f µs / %.1f µs = %.2f× (%.1f%% accepted; %.1f–%.1f× the 85–105 µs floor)",
				s.APICPUMicros, bareAt[rate], x, 100*float64(s.Accepted)/float64(max(s.Sent, 1)), s.APICPUMicros/105, s.APICPUMicros/85)
		}
		return l
	}
	out = append(out, ratio(3000, 3), ratio(5000, 2.5))

	if r := byName["burst"]; r != nil {
		gin := ceil["gin JSON endpoint"]
		p99 := r.LatencyMs["accepted_p99_after_warmup"]
		out = append(out, barLine{Line: "burst: accepted ≥ 25 % of saturated bare Gin, accepted p99 < 100 ms after the warm-up, nothing lost or doubled",
			Judged: true, Pass: r.AchievedPerS >= gin/4 && p99 < 100 && r.Verdict.OK,
			Figure: fmt.Sprintf("%.0f/s = %.1f%% of %.0f/s, p99 %.1f ms after %.0f s, verdict %v", r.AchievedPerS, 100*r.AchievedPerS/nz(gin), gin, p99, r.WarmupS, r.Verdict.OK)})
	} else {
		out = append(out, barLine{Line: "burst: not run"})
	}
	if r := byName["steady"]; r != nil {
		shed := r.Codes["OVERLOADED"]
		p99, lag := r.LatencyMs["accepted_p99"], r.LiveLagMs["p99"]
		out = append(out, barLine{Line: "steady 1,000/s from a fresh start: zero 503, accepted p99 < 100 ms, live-tally lag p99 ≤ 2 s",
			Judged: true, Pass: shed == 0 && r.Codes["http_503"] == 0 && p99 < 100 && lag <= 2000 && r.Verdict.OK,
			Figure: fmt.Sprintf("%d × 503, p99 %.1f ms, lag p99 %.0f ms", shed+r.Codes["http_503"], p99, lag)})
	} else {
		out = append(out, barLine{Line: "steady: not run"})
	}
	if r := byName["overload"]; r != nil {
		p99 := r.LatencyMs["accepted_p99"]
		other := r.Sent
		for k, v := range r.Codes {
			if k == "OVERLOADED" || k == "202_accepted" {
				other -= v
			}
		}
		out = append(out, barLine{Line: "overload at twice the burst rate: accepted p99 < 250 ms, the rest 503 OVERLOADED, nothing accepted lost",
			Judged: true, Pass: p99 < 250 && other == 0 && r.Verdict.OK,
			Figure: fmt.Sprintf("p99 %.1f ms, %d answers neither 202 nor 503 OVERLOADED, verdict %v", p99, other, r.Verdict.OK)})
	} else {
		out = append(out, barLine{Line: "overload: not run"})
	}
	if r := byName["accept"]; r != nil {
		lwt := ceil["cassandra LWT"]
		out = append(out, barLine{Line: "drain with the API idle ≥ 80 % of the bare LWT loop",
			Judged: true, Pass: r.DrainRowsPerS >= 0.8*lwt,
			Figure: fmt.Sprintf("%.0f rows/s = %.0f%% of %.0f/s (%s)", r.DrainRowsPerS, 100*r.DrainRowsPerS/nz(lwt), lwt, r.Drainer)})
	}
	return out
}

func printBar(w io.Writer, lines []barLine, valid bool) {
	fmt.Fprintln(w, "\nThe front door's bar (ratios to this run's ceilings)")
	if !valid {
		fmt.Fprintln(w, "  (this run started above the load limit: INVALID, not to be cited)")
	}
	for _, l := range lines {
		state := "—"
		if l.Judged {
			state = "FAIL"
			if l.Pass {
				state = "PASS"
			}
		}
		fmt.Fprintf(w, "  %-4s %s", state, l.Line)
		if l.Figure != "" {
			fmt.Fprintf(w, ": %s", l.Figure)
		}
		fmt.Fprintln(w)
	}
}
