package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/clientip"
	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// liveSockets is the policy around live sockets: who may open one, how
// many, and when the server ends one.
type liveSockets struct {
	cfg      Config
	gate     *liveGate
	origins  originPolicy
	upgrader websocket.Upgrader
}

func newLiveSockets(cfg Config, publicURL string, reg prometheus.Registerer) *liveSockets {
	return &liveSockets{
		cfg:     cfg,
		gate:    newLiveGate(cfg, reg),
		origins: newOriginPolicy(publicURL, cfg.AllowedOrigins),
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			// The handler has applied the origin policy before upgrading.
			CheckOrigin: func(*http.Request) bool { return true },
			// A request that is not a valid WebSocket handshake gets the
			// SPEC's envelope, not the library's plain-text answer.
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				code := "VALIDATION_FAILED"
				if status >= 500 {
					code = "INTERNAL"
				}
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(status)
				_ = json.NewEncoder(w).Encode(envelope{Error: errorBody{Code: code, Message: "websocket handshake: " + reason.Error()}})
			},
		},
	}
}

// live upgrades to a WebSocket, sends the current results at once, then a
// frame whenever they change (see pkg/live). Before the upgrade it applies
// the origin policy (403), the caller's visibility (403) and the socket
// caps (429 per IP, 503 in total). An open socket is closed when its token
// expires (4401), when the caller may no longer see the results (4403),
// when the client reads too slowly (1008) or when the server shuts down
// (1001).
func (h *handlers) live(c *gin.Context) {
	s := h.sockets
	if !s.origins.allows(c.GetHeader("Origin")) {
		s.gate.refused.WithLabelValues(liveRefusedOrigin).Inc()
		abort(c, errLiveOrigin)
		return
	}
	p, release := h.admitWatcher(c)
	if p == nil {
		return
	}
	defer release()
	ctx := c.Request.Context()
	conn, err := s.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	defer conn.Close()
	if tcp, ok := conn.UnderlyingConn().(*net.TCPConn); ok && s.cfg.LiveSendBuffer > 0 {
		_ = tcp.SetWriteBuffer(s.cfg.LiveSendBuffer)
	}
	sub := h.hub.Subscribe(p, live.WebSocket, h.liveAllowed(c))
	defer sub.Close()
	log := loggerFrom(c)

	// Read in the background only to notice the client closing.
	closed := make(chan struct{})
	// The server's read deadline does not fit a long-lived socket: the
	// client must answer our pings instead.
	alive := func(string) error { return conn.SetReadDeadline(time.Now().Add(livePongWait)) }
	_ = alive("")
	conn.SetPongHandler(alive)
	go func() {
		defer close(closed)
		conn.SetReadLimit(512)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	end := func(code int, reason, text string) {
		s.gate.closed.WithLabelValues(reason).Inc()
		log.Debug("live socket closed by the server", zap.String("reason", reason))
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	}
	write := func(f []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.LiveWriteTimeout))
		err := conn.WriteMessage(websocket.TextMessage, f)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.gate.closed.WithLabelValues(liveClosedSlow).Inc()
			log.Debug("live socket dropped: client reads too slowly")
		} else if err != nil {
			log.Debug("live write", zap.Error(err))
		}
		return err == nil
	}

	expired, stop := h.tokenExpiry(c)
	defer stop()
	ping := time.NewTicker(livePingEvery)
	defer ping.Stop()
	for {
		select {
		case <-closed:
			return
		case <-ctx.Done():
			return
		case f, ok := <-sub.Frames():
			if ok {
				if !write(f) {
					return
				}
				continue
			}
			switch sub.Reason() {
			case live.EndHidden:
				end(closeResultsHidden, liveClosedHidden, "RESULTS_HIDDEN: the results are no longer visible to this caller")
			case live.EndShutdown:
				end(websocket.CloseGoingAway, liveClosedShutdown, "server shutting down")
			default: // the hub dropped this socket: it left frames untaken
				end(websocket.ClosePolicyViolation, liveClosedSlow, "slow consumer")
			}
			return
		case <-expired:
			end(closeTokenExpired, liveClosedExpired, "TOKEN_EXPIRED: the access token expired")
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.LiveWriteTimeout)); err != nil {
				return
			}
		}
	}
}

// admitWatcher admits a live watcher (socket or stream) of the path's
// poll: a slot of the live gate (per client IP and per process; 429/503
// with Retry-After), then the poll and the caller's right to see its
// results. It returns nil once it has answered the client; otherwise the
// poll and the function that frees the slot.
func (h *handlers) admitWatcher(c *gin.Context) (*poll.Poll, func()) {
	release, err := h.sockets.gate.acquire(clientip.Key(c.ClientIP()))
	if err != nil {
		c.Header("Retry-After", "5")
		abort(c, err)
		return nil, nil
	}
	p := h.visiblePoll(c)
	if p == nil {
		release()
		return nil, nil
	}
	return p, release
}

// liveAllowed is the permission check a live subscription carries: the
// hub asks it again at each change of the poll and every
// TALLY_HTTP_LIVE_RECHECK. Only a definite "hidden" ends a subscription; a
// dependency that cannot answer now is asked again later. The check works
// on a copy of the request's context, since the hub may still be asking
// as the handler returns.
func (h *handlers) liveAllowed(c *gin.Context) func(context.Context, *poll.Poll) bool {
	cc := c.Copy()
	return func(ctx context.Context, p *poll.Poll) bool {
		return !errors.Is(h.canSeeResults(ctx, cc, p), tally.ErrResultsHidden)
	}
}

// tokenExpiry is a channel that fires when the caller's token expires (nil
// for a caller without one), and the function that releases its timer.
func (h *handlers) tokenExpiry(c *gin.Context) (<-chan time.Time, func()) {
	caller, signedIn := principal(c)
	if !signedIn || caller.ExpiresAt.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(caller.ExpiresAt.Sub(h.now()))
	return t.C, func() { t.Stop() }
}

// A live socket is pinged every livePingEvery and closed when no pong (or
// other frame) arrived within livePongWait.
const (
	livePingEvery = 30 * time.Second
	livePongWait  = 75 * time.Second
)
