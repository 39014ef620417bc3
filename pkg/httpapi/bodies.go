package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/clientip"
)

var (
	errBodiesPerClient = apperr.New(apperr.CodeRateLimited, "too many unfinished request bodies from this address")
	errBodyUnread      = apperr.Invalid("body", "could not be read in full")
)

// bodyGate caps the request bodies one client (an IPv6 client's /64, see
// clientip.Key) may be sending at once. A body that trickles in holds only
// its goroutine and its place under this cap, never an admission slot: the
// vote route takes its slot after the body is read (see readBody). It counts
// in this process only, with no Redis round trip; each replica holds its own
// share.
type bodyGate struct {
	maxPerClient int

	mu      sync.Mutex
	reading map[string]int
	total   int

	refused prometheus.Counter
}

func newBodyGate(cfg Config, reg prometheus.Registerer) *bodyGate {
	g := &bodyGate{maxPerClient: cfg.BodyMaxPerClient, reading: map[string]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_http_bodies_refused_total",
			Help: "Requests refused with 429 because their client was already sending as many unfinished bodies as it may.",
		}),
	}
	reading := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tally_http_bodies_reading", Help: "Request bodies being read now.",
	}, func() float64 {
		g.mu.Lock()
		defer g.mu.Unlock()
		return float64(g.total)
	})
	reg.MustRegister(g.refused, reading)
	return g
}

// acquire counts one body of client in progress, or returns
// errBodiesPerClient when the client already sends its cap of them. release
// must be called once the body is read (or given up).
func (g *bodyGate) acquire(client string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxPerClient > 0 && g.reading[client] >= g.maxPerClient {
		g.refused.Inc()
		return nil, errBodiesPerClient
	}
	g.reading[client]++
	g.total++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if g.reading[client]--; g.reading[client] <= 0 {
			delete(g.reading, client)
		}
	}, nil
}

// readBody caps request bodies at max bytes (413 past it) and reads each
// whole before any handler or later middleware runs, so nothing a handler
// holds (the vote route's admission slot, a token check, a Redis call) waits
// on a client's upload. The read itself counts under g's per-client cap: a
// client already sending its cap of unfinished bodies is refused at once
// with 429 RATE_LIMITED, holding nothing. The server's ReadTimeout cuts off
// a body that trickles for longer.
func readBody(max int64, g *bodyGate) gin.HandlerFunc {
	tooLarge := apperr.New(apperr.CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(max, 10)+" bytes")
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			abort(c, tooLarge)
			return
		}
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			// No route reads a body of these; one sent anyway is left
			// unread, held by nothing but its goroutine.
			return
		}
		if c.Request.ContentLength == 0 || c.Request.Body == nil || c.Request.Body == http.NoBody {
			return
		}
		client := clientip.Key(c.ClientIP())
		release, err := g.acquire(client)
		if err != nil {
			// No address in the line: IPs are never logged (docs/operations.md).
			loggerFrom(c).Debug("request refused: too many unfinished bodies from its client",
				zap.String("route", c.FullPath()), zap.Int("max_per_client", g.maxPerClient))
			c.Header("Retry-After", "1")
			// Left alone, the server would read what is left of the unread
			// body (up to 256 KiB) before answering, waiting on the very
			// trickle refused here. Close the connection after the answer
			// and stop reading from it now (a deadline in the past fails
			// the next read at once), so the refusal holds nothing.
			c.Header("Connection", "close")
			_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Unix(1, 0))
			abort(c, err)
			return
		}
		b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, max))
		release()
		if err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				abort(c, tooLarge)
				return
			}
			loggerFrom(c).Debug("request body not read", zap.Error(err))
			abort(c, errBodyUnread)
			return
		}
		c.Request.Body = newBodyBytes(b)
	}
}
