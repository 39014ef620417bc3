package httpapi

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/apperr"
)

// Why a live socket was refused or closed early (bounded metric labels).
const (
	liveRefusedOrigin = "origin"
	liveRefusedPerIP  = "per_ip"
	liveRefusedTotal  = "total"

	liveClosedSlow     = "slow"
	liveClosedHidden   = "results_hidden"
	liveClosedExpired  = "token_expired"
	liveClosedShutdown = "shutdown"
)

// Close codes sent on a live socket the server ends (4000–4999 are the
// application's range in RFC 6455). A slow consumer gets 1008 (policy).
const (
	closeTokenExpired  = 4401
	closeResultsHidden = 4403
)

var (
	errLiveOrigin = apperr.New(apperr.CodeForbidden, "this Origin may not open live sockets")
	errLivePerIP  = apperr.New(apperr.CodeRateLimited, "too many live sockets from this address")
	errLiveTotal  = apperr.New(apperr.CodeUnavailable, "the server holds as many live sockets as it may, try again later")
)

// liveGate caps open live sockets per client (an IPv6 client's /64, see
// clientip.Key) and in total. It counts in this process only: each replica
// holds its own share.
type liveGate struct {
	maxPerIP, maxTotal int

	mu    sync.Mutex
	perIP map[string]int
	total int

	refused *prometheus.CounterVec
	closed  *prometheus.CounterVec
}

func newLiveGate(cfg Config, reg prometheus.Registerer) *liveGate {
	g := &liveGate{
		maxPerIP: cfg.LiveMaxPerIP, maxTotal: cfg.LiveMaxTotal, perIP: map[string]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_refused_total", Help: "Live socket handshakes refused, by reason (origin, per_ip, total).",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_live_dropped_total",
			Help: "Live sockets and streams the server closed, by reason (slow, results_hidden, token_expired, shutdown).",
		}, []string{"reason"}),
	}
	for _, r := range []string{liveRefusedOrigin, liveRefusedPerIP, liveRefusedTotal} {
		g.refused.WithLabelValues(r)
	}
	for _, r := range []string{liveClosedSlow, liveClosedHidden, liveClosedExpired, liveClosedShutdown} {
		g.closed.WithLabelValues(r)
	}
	reg.MustRegister(g.refused, g.closed)
	return g
}

// acquire takes a slot for ip, or returns the error to answer with. The
// release function must be called once the socket ends.
func (g *liveGate) acquire(ip string) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxPerIP > 0 && g.perIP[ip] >= g.maxPerIP {
		g.refused.WithLabelValues(liveRefusedPerIP).Inc()
		return nil, errLivePerIP
	}
	if g.maxTotal > 0 && g.total >= g.maxTotal {
		g.refused.WithLabelValues(liveRefusedTotal).Inc()
		return nil, errLiveTotal
	}
	g.perIP[ip]++
	g.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.perIP[ip]--; g.perIP[ip] <= 0 {
				delete(g.perIP, ip)
			}
		})
	}, nil
}
