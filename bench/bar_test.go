package main

import "testing"

func TestFrontDoorBarJudgesRatiosAndCountedSteps(t *testing.T) {
	ceilings := []ceiling{{Name: "gin JSON endpoint", OpsPerS: 20000}, {Name: "cassandra LWT", OpsPerS: 1000}}
	bare := []bareStep{{OfferedPerS: 3000, CPUMicros: 60}, {OfferedPerS: 5000, CPUMicros: 50}}
	accept := &scenarioReport{Name: "accept", DrainRowsPerS: 850, Steps: []step{
		{OfferedPerS: 3000, Sent: 1000, Accepted: 1000, Counts: true, APICPUMicros: 170}, // 2.83×: pass
		{OfferedPerS: 5000, Sent: 1000, Accepted: 900, Counts: false, APICPUMicros: 100}, // 2× but 90 % accepted: fail
	}}
	burst := &scenarioReport{Name: "burst", AchievedPerS: 4900, LatencyMs: map[string]float64{"accepted_p99_after_warmup": 80},
		Verdict: verdict{OK: true}}
	steady := &scenarioReport{Name: "steady", Codes: map[string]int{"OVERLOADED": 1}, LatencyMs: map[string]float64{"accepted_p99": 20},
		LiveLagMs: map[string]float64{"p99": 500}, Verdict: verdict{OK: true}}
	got := frontDoorBar([]*scenarioReport{accept, burst, steady}, ceilings, bare)
	want := []struct{ judged, pass bool }{
		{true, true},   // 3,000/s ratio
		{true, false},  // 5,000/s: shed too much to count
		{true, false},  // burst: 4,900 < 5,000
		{true, false},  // steady: one 503
		{false, false}, // overload not run
		{true, true},   // drain 85 % of LWT
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Judged != w.judged || got[i].Pass != w.pass {
			t.Errorf("line %d %q: judged %v pass %v, want %v %v (%s)", i, got[i].Line, got[i].Judged, got[i].Pass, w.judged, w.pass, got[i].Figure)
		}
	}
}
