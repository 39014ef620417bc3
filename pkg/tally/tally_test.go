package tally

import (
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

func TestBuildResults(t *testing.T) {
	a, b, c := id.New(), id.New(), id.New()
	now := time.Now()
	p := &poll.Poll{StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Options: []poll.Option{{ID: a, Text: "A"}, {ID: b, Text: "B"}, {ID: c, Text: "C"}}}
	tests := []struct {
		name  string
		c     Counts
		total int64
		pct   []float64
	}{
		{"empty", NewCounts(), 0, []float64{0, 0, 0}},
		{"thirds", Counts{Ballots: 3, Options: map[id.ID]int64{a: 1, b: 1, c: 1}}, 3, []float64{33.33, 33.33, 33.33}},
		{"multi share of ballots", Counts{Ballots: 2, Options: map[id.ID]int64{a: 2, b: 1}}, 2, []float64{100, 50, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := BuildResults(p, tc.c, Live, now, now)
			if r.TotalVotes != tc.total || r.Status != poll.Active || len(r.Options) != 3 {
				t.Fatalf("got %+v", r)
			}
			for i, o := range r.Options {
				if o.Percentage != tc.pct[i] || o.Label != p.Options[i].Text {
					t.Fatalf("option %d: %+v, want %.2f%%", i, o, tc.pct[i])
				}
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a, b := id.New(), id.New()
	have := Counts{Ballots: 5, Options: map[id.ID]int64{a: 3, b: 2}}
	want := Counts{Ballots: 6, Options: map[id.ID]int64{a: 4}}
	d := have.Diff(want)
	if d.Ballots != 1 || d.Options[a] != 1 || d.Options[b] != -2 {
		t.Fatalf("diff %+v", d)
	}
	if !have.Diff(have).IsZero() {
		t.Fatal("self diff not zero")
	}
}
