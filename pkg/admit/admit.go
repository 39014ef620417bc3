// Package admit is the API's admission control for the vote path. It bounds
// the votes in flight, so that past the machine's limit the excess is
// refused at once with 503 + Retry-After instead of queueing until every
// request is slow, and it tells the co-located worker when the front door
// is under pressure so the drain yields the CPU to it (the backlog waits in
// Kafka; see docs/architecture.md, "Burst absorption").
package admit

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/apperr"
)

// Config tunes admission.
type Config struct {
	// MaxInFlight bounds vote requests being handled at once; the next one
	// is refused with 503 OVERLOADED. 0 disables the bound.
	MaxInFlight int `env:"MAX_IN_FLIGHT" envDefault:"256"`
	// PressureLatency is the smoothed vote latency above which the front
	// door counts as under pressure.
	PressureLatency time.Duration `env:"PRESSURE_LATENCY" envDefault:"20ms"`
	// PressureInFlight is the in-flight count above which it does too.
	PressureInFlight int `env:"PRESSURE_IN_FLIGHT" envDefault:"32"`
	// BurstInFlight is the in-flight count above which votes count as
	// queueing (a burst: the co-located drain stops). A refusal at
	// MaxInFlight is a burst too. At a steady 1,000 votes/s a few tens in
	// flight come and go; a queue is more.
	BurstInFlight int `env:"BURST_IN_FLIGHT" envDefault:"128"`
	// PressureHold keeps the pressure signal up this long after the last
	// sign of it, so a drain that resumed does not flap.
	PressureHold time.Duration `env:"PRESSURE_HOLD" envDefault:"500ms"`
}

// Gate counts vote requests in flight and their latency.
type Gate struct {
	cfg      Config
	now      func() time.Time
	inFlight atomic.Int64
	// ewmaNanos is the smoothed latency of admitted requests.
	ewmaNanos atomic.Int64
	// pressureUntil is unix nanos until which Pressure reports true;
	// burstUntil, until which Burst does.
	pressureUntil atomic.Int64
	burstUntil    atomic.Int64
	m             metrics
}

type metrics struct {
	inFlight prometheus.GaugeFunc
	refused  prometheus.Counter
	pressure prometheus.GaugeFunc
	burst    prometheus.GaugeFunc
}

// New builds a gate and registers its metrics.
func New(cfg Config, now func() time.Time, reg prometheus.Registerer) *Gate {
	g := &Gate{cfg: cfg, now: now}
	g.m = metrics{
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tally_admission_in_flight", Help: "Vote requests being handled now.",
		}, func() float64 { return float64(g.inFlight.Load()) }),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_admission_refused_total", Help: "Vote requests refused with 503 OVERLOADED at the admission bound.",
		}),
		pressure: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tally_api_pressure", Help: "1 while the vote path is under pressure (the co-located drain yields).",
		}, func() float64 {
			if g.Pressure() {
				return 1
			}
			return 0
		}),
	}
	g.m.burst = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tally_api_burst", Help: "1 while votes queue at the front door (in flight above the pressure bound, or refused): the co-located drain stops.",
	}, func() float64 {
		if g.Burst() {
			return 1
		}
		return 0
	})
	reg.MustRegister(g.m.inFlight, g.m.refused, g.m.pressure, g.m.burst)
	return g
}

// Enter admits one request, or returns apperr.ErrOverloaded. done must be called
// when the request ends.
func (g *Gate) Enter() (done func(), err error) {
	n := g.inFlight.Add(1)
	if g.cfg.MaxInFlight > 0 && n > int64(g.cfg.MaxInFlight) {
		g.inFlight.Add(-1)
		g.m.refused.Inc()
		g.signalBurst()
		return nil, apperr.ErrOverloaded
	}
	switch {
	case g.cfg.BurstInFlight > 0 && n > int64(g.cfg.BurstInFlight):
		g.signalBurst()
	case g.cfg.PressureInFlight > 0 && n > int64(g.cfg.PressureInFlight):
		g.signal()
	}
	start := g.now()
	return func() {
		g.inFlight.Add(-1)
		g.observe(g.now().Sub(start))
	}, nil
}

// observe folds one latency into the smoothed latency (weight 1/32) and
// raises pressure when it is over its threshold.
func (g *Gate) observe(d time.Duration) {
	for {
		old := g.ewmaNanos.Load()
		next := old + (int64(d)-old)/32
		if g.ewmaNanos.CompareAndSwap(old, next) {
			if g.cfg.PressureLatency > 0 && time.Duration(next) > g.cfg.PressureLatency {
				g.signal()
			}
			break
		}
	}
}

func (g *Gate) signal() {
	g.pressureUntil.Store(g.now().Add(g.cfg.PressureHold).UnixNano())
}

// signalBurst raises both signals: votes are queueing.
func (g *Gate) signalBurst() {
	until := g.now().Add(g.cfg.PressureHold).UnixNano()
	g.pressureUntil.Store(until)
	g.burstUntil.Store(until)
}

// Pressure reports whether the vote path is, or was within PressureHold,
// busy, slow or full: the co-located drain backs off.
func (g *Gate) Pressure() bool {
	return g.now().UnixNano() < g.pressureUntil.Load()
}

// Burst reports whether votes are, or were within PressureHold, queueing
// at the front door: more in flight than BurstInFlight, or refused at the
// bound. Slowness alone is not a burst. The co-located drain stops
// while it lasts.
func (g *Gate) Burst() bool {
	return g.now().UnixNano() < g.burstUntil.Load()
}

// Latency is the smoothed latency of admitted vote requests.
func (g *Gate) Latency() time.Duration { return time.Duration(g.ewmaNanos.Load()) }
