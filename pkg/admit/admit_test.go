package admit

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/apperr"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestGate(t *testing.T) {
	cases := []struct {
		name         string
		cfg          Config
		hold         int           // requests held open
		finish       time.Duration // latency of one more request, finished
		after        time.Duration // time passing before the check
		wantRefused  bool          // the request after the held ones is refused
		wantPressure bool
		wantBurst    bool
	}{
		{name: "idle", cfg: Config{MaxInFlight: 4, PressureInFlight: 3, PressureLatency: 20 * time.Millisecond, PressureHold: time.Second}},
		{name: "full refuses the next", cfg: Config{MaxInFlight: 4, PressureHold: time.Second}, hold: 4, wantRefused: true, wantPressure: true, wantBurst: true},
		{name: "many in flight is pressure", cfg: Config{MaxInFlight: 10, PressureInFlight: 2, BurstInFlight: 5, PressureHold: time.Second}, hold: 3, wantPressure: true},
		{name: "a queue is a burst", cfg: Config{MaxInFlight: 10, PressureInFlight: 2, BurstInFlight: 5, PressureHold: time.Second}, hold: 6, wantPressure: true, wantBurst: true},
		{name: "pressure lapses after the hold", cfg: Config{MaxInFlight: 10, PressureInFlight: 2, PressureHold: time.Second}, hold: 3, after: 2 * time.Second},
		{name: "slow requests are pressure", cfg: Config{PressureLatency: time.Millisecond, PressureHold: time.Second}, finish: time.Second, wantPressure: true},
		{name: "fast requests are not", cfg: Config{PressureLatency: time.Second, PressureHold: time.Second}, finish: time.Millisecond},
		{name: "no bound admits all", cfg: Config{}, hold: 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			g := New(tc.cfg, c.now, prometheus.NewRegistry())
			for i := range tc.hold {
				if _, err := g.Enter(); err != nil {
					t.Fatalf("request %d of %d refused: %v", i+1, tc.hold, err)
				}
			}
			if tc.finish > 0 {
				done, err := g.Enter()
				if err != nil {
					t.Fatal(err)
				}
				c.t = c.t.Add(tc.finish)
				done()
			}
			if tc.cfg.MaxInFlight > 0 {
				_, err := g.Enter()
				if refused := errors.Is(err, apperr.ErrOverloaded); refused != tc.wantRefused {
					t.Fatalf("next request refused = %v, want %v", refused, tc.wantRefused)
				}
			}
			c.t = c.t.Add(tc.after)
			if got := g.Pressure(); got != tc.wantPressure {
				t.Fatalf("pressure = %v, want %v", got, tc.wantPressure)
			}
			// Slow requests strain the path but are no burst: only
			// queueing (many in flight, refusals) is.
			if got := g.Burst(); got != tc.wantBurst {
				t.Fatalf("burst = %v, want %v", got, tc.wantBurst)
			}
		})
	}
}
