package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

func TestPrintFlagSummary(t *testing.T) {
	a, b := id.New(), id.New()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p := &poll.Poll{ID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Options: []poll.Option{{ID: a, Text: "yes"}, {ID: b, Text: "no", DisplayOrder: 1}}}
	rc := tally.NewRowCounts()
	rc.Add([]id.ID{a}, nil)
	rc.Add([]id.ID{b}, []string{"ip_burst"})
	rc.Add([]id.ID{b}, []string{"device_reuse", "ip_burst"})
	var w bytes.Buffer
	printFlagSummary(&w, tally.BuildFlagReport(p, rc, now, now))
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), w.String())
	}
	for i, want := range [][]string{
		{"3 votes, 2 flagged (device_reuse 1, ip_burst 2); 1 without them", "2026-11-27T12:00:00Z"},
		{`"yes"`, "1 ( 33.33%)", "excluding flagged        1 (100.00%)"},
		{`"no"`, "2 ( 66.67%)", "excluding flagged        0 (  0.00%)"},
	} {
		for _, s := range want {
			if !strings.Contains(lines[i], s) {
				t.Errorf("line %d %q lacks %q", i, lines[i], s)
			}
		}
	}
	t.Log("\n" + w.String())
}
