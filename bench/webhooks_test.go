package main

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseSeries(t *testing.T) {
	text := `# HELP tally_webhook_deliveries_total Webhook delivery attempts
# TYPE tally_webhook_deliveries_total counter
tally_webhook_deliveries_total{result="attempt_failed"} 42
tally_webhook_deliveries_total{result="attempt_ok"} 7
tally_webhook_deliveries_total{result="given_up"} 0
tally_webhook_in_flight 8
tally_webhook_in_flight_other 99
`
	got := parseSeries(strings.NewReader(text), webhookSeries)
	for k, want := range map[string]float64{"attempt_failed": 42, "attempt_ok": 7, "given_up": 0, "in_flight": 8, "lanes": 0} {
		if got[k] != want {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}

func TestWebhookCompare(t *testing.T) {
	for _, tc := range []struct {
		name       string
		base, hook float64
		ratio      float64
	}{
		{"unchanged", 20, 20, 1},
		{"doubled", 20, 40, 2},
		{"no baseline figure", 0, 40, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w webhookReport
			w.compare(&scenarioReport{LatencyMs: map[string]float64{"accepted_p99_after_warmup": tc.base}},
				&scenarioReport{LatencyMs: map[string]float64{"accepted_p99_after_warmup": tc.hook}})
			if w.Ratio != tc.ratio || w.BaselineP99Ms != tc.base || w.HookedP99Ms != tc.hook {
				t.Fatalf("%+v", w)
			}
		})
	}
}

// TestReceivers: the hanging one takes the connection and never answers
// (a client times out), the slow one answers 204 after its delay.
func TestReceivers(t *testing.T) {
	r, err := startReceivers(200 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	c := &http.Client{Timeout: 500 * time.Millisecond}
	start := time.Now()
	_, err = c.Post(r.hangURL(), "application/json", strings.NewReader(`{}`))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("hanging receiver: %v", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("hanging receiver ended the exchange after %s", d)
	}
	start = time.Now()
	resp, err := c.Post(r.slowURL(), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("slow receiver: %d after %s", resp.StatusCode, time.Since(start))
	}
	if acc, ans := r.counts(); acc != 1 || ans != 1 {
		t.Fatalf("counts: %d connections, %d answers", acc, ans)
	}
}
