package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/tally"
)

// sseHeartbeat is how often an idle stream gets a comment line, so proxies
// and clients keep it open.
const sseHeartbeat = 15 * time.Second

var (
	errStreamTokenExpired = apperr.New(apperr.CodeUnauthenticated, "the access token expired")
	errStreamShutdown     = apperr.New(apperr.CodeUnavailable, "the server is shutting down; reconnect")
)

// resultsStream serves the live results as Server-Sent Events, for clients
// that cannot speak WebSocket: the same frames, caps (429 per IP, 503 in
// total), authentication (?access_token= included) and visibility (403)
// as /live, but no origin policy: an event stream is a plain GET, which
// CORS already governs. Each frame is a "results" event whose data is the
// results document; a stream the server ends gets an "error" event
// carrying the error envelope (RESULTS_HIDDEN, TOKEN_EXPIRED, UNAVAILABLE
// at shutdown). A comment line every sseHeartbeat keeps it open.
//
// The server's WriteTimeout would cut the stream: each write instead
// carries its own deadline (TALLY_HTTP_LIVE_WRITE_TIMEOUT, past which the
// client is too slow and dropped), pushed past the next heartbeat once
// the write is done.
func (h *handlers) resultsStream(c *gin.Context) {
	s := h.sockets
	p, release := h.admitWatcher(c)
	if p == nil {
		return
	}
	defer release()
	ctx := c.Request.Context()
	rc := http.NewResponseController(c.Writer)
	log := loggerFrom(c)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.LiveWriteTimeout))
		if _, err := c.Writer.Write(b); err != nil {
			log.Debug("results stream write", zap.Error(err))
			return false
		}
		if err := rc.Flush(); err != nil {
			log.Debug("results stream flush", zap.Error(err))
			return false
		}
		// Clear of the next heartbeat, so an idle stream never meets it.
		_ = rc.SetWriteDeadline(time.Now().Add(sseHeartbeat + s.cfg.LiveWriteTimeout))
		return true
	}
	end := func(reason string, err *apperr.Error) {
		s.gate.closed.WithLabelValues(reason).Inc()
		log.Debug("results stream ended by the server", zap.String("reason", reason))
		if err != nil {
			_ = write(sseEvent("error", errorEnvelope(err)))
		}
	}

	sub := h.hub.Subscribe(p, live.SSE, h.liveAllowed(c))
	defer sub.Close()
	hd := c.Writer.Header()
	hd.Set("Content-Type", "text/event-stream")
	if hd.Get("Cache-Control") == "" { // a request with a token already has no-store
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Set("X-Accel-Buffering", "no") // nginx would buffer the stream
	c.Status(http.StatusOK)
	if !write([]byte(": results stream\nretry: 3000\n\n")) {
		return
	}
	expired, stop := h.tokenExpiry(c)
	defer stop()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-sub.Frames():
			if ok {
				if !write(sseEvent("results", f)) {
					return
				}
				continue
			}
			switch sub.Reason() {
			case live.EndHidden:
				end(liveClosedHidden, tally.ErrResultsHidden)
			case live.EndShutdown:
				end(liveClosedShutdown, errStreamShutdown)
			default:
				end(liveClosedSlow, nil)
			}
			return
		case <-expired:
			end(liveClosedExpired, errStreamTokenExpired)
			return
		case <-beat.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}

// sseEvent formats one event. data is one line of JSON (encoding/json
// escapes newlines in strings), so it needs one data: field.
func sseEvent(name string, data []byte) []byte {
	b := make([]byte, 0, len(name)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// errorEnvelope is one of the stream's own coded errors in the SPEC's
// envelope, as JSON.
func errorEnvelope(err *apperr.Error) []byte {
	b, _ := json.Marshal(envelope{Error: errorBody{Code: err.Code.String(), Message: err.Message}})
	return b
}
