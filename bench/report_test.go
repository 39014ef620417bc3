package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLagSeries(t *testing.T) {
	tests := []struct {
		name string
		tl   []sample
		want []float64
	}{
		{"caught up", []sample{{T: 0, Accepted: 10, Live: 10}, {T: 1, Accepted: 20, Live: 20}}, []float64{0, 0}},
		{"trailing then catching up", []sample{
			{T: 0, Accepted: 10, Live: 0},
			{T: 1, Accepted: 20, Live: 5},
			{T: 2, Accepted: 30, Live: 15},
			{T: 3, Accepted: 30, Live: 30},
		}, []float64{0, 1, 1, 0}},
		{"drain paused", []sample{
			{T: 0, Accepted: 0, Live: 0},
			{T: 1, Accepted: 100, Live: 0},
			{T: 2, Accepted: 200, Live: 0},
			{T: 3, Accepted: 300, Live: 0},
		}, []float64{0, 0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lagSeries(tt.tl)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Fatalf("lagSeries = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestPerSecondSeries(t *testing.T) {
	origin := time.Unix(1000, 0)
	st := newLoadStats()
	st.origin = origin
	st.record(origin.Add(100*time.Millisecond), false, 5*time.Millisecond, result{status: 202})
	st.record(origin.Add(1100*time.Millisecond), true, 7*time.Millisecond, result{status: 202})
	st.record(origin.Add(1200*time.Millisecond), true, time.Millisecond, result{status: 503, code: "OVERLOADED"})
	// The sampler began 0.5 s before the load: 12 rows recorded then.
	tl := []sample{{T: 0.25, Recorded: 12}, {T: 1.25, Accepted: 1, Recorded: 12}, {T: 2.25, Accepted: 1, Recorded: 12},
		{T: 3.25, Accepted: 2, Live: 2, Recorded: 14}}
	got := perSecondSeries(st, tl, 0.5)
	if len(got) != 3 {
		t.Fatalf("len = %d, want 3 seconds: %+v", len(got), got)
	}
	if got[0].Accepted != 1 || got[1].Accepted != 1 || got[1].Shed != 1 {
		t.Errorf("accepted/shed per second wrong: %+v", got)
	}
	if got[0].DrainRows != 0 || got[1].DrainRows != 0 || got[2].DrainRows != 2 {
		t.Errorf("drain rows per second wrong: %+v", got)
	}
	if got[1].LiveLagS != 1 || got[2].LiveLagS != 0 {
		t.Errorf("live lag per second wrong: %+v", got)
	}
	if got[1].P99ms < 6.9 || got[1].P99ms > 7.1 {
		t.Errorf("second 1 accepted p99 = %v ms, want 7", got[1].P99ms)
	}
}

func TestWarmupIsLeftOutOfTheJudgedP99(t *testing.T) {
	st := newLoadStats()
	st.origin = time.Unix(0, 0)
	st.record(st.origin, false, 900*time.Millisecond, result{status: 202})
	st.record(st.origin.Add(6*time.Second), true, 10*time.Millisecond, result{status: 202})
	if p := ms(st.okWarm.ValueAtQuantile(99)); p > 11 {
		t.Errorf("accepted p99 after warm-up = %v ms, want the warm-up's 900 ms left out", p)
	}
	if p := ms(st.ok.ValueAtQuantile(99)); p < 800 {
		t.Errorf("accepted p99 = %v ms, want the warm-up included", p)
	}
}

func TestLoadAvgValidity(t *testing.T) {
	for _, tt := range []struct {
		one  float64
		want bool
	}{{0.2, true}, {1.0, true}, {1.01, false}, {3, false}} {
		if got := (loadAvg{One: tt.one}).Valid(); got != tt.want {
			t.Errorf("load %v: Valid = %v, want %v", tt.one, got, tt.want)
		}
	}
}

func TestDrawChartWritesSVG(t *testing.T) {
	r := &scenarioReport{Name: "accept", OfferedPerS: 1000, PerSecond: []perSecond{
		{T: 0, Accepted: 990, Shed: 10, P50ms: 3, P99ms: 20, LiveLagS: 0.5},
		{T: 1, Accepted: 1000, P50ms: 2, P99ms: 9, DrainRows: 800, LiveLagS: 1},
	}}
	path := filepath.Join(t.TempDir(), "c.svg")
	if err := drawChart(path, "run", r, []ceiling{{Name: "gin JSON endpoint", OpsPerS: 12000}, {Name: "cassandra LWT", OpsPerS: 1500}}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "<svg") || !strings.Contains(string(raw), "live-tally lag") {
		t.Errorf("chart is not an SVG with its panels: %.200s", raw)
	}
}
