package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/tally"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 4096,
	// The API is token-authenticated, not cookie-authenticated, so a
	// cross-origin page gains nothing it could not get with fetch.
	CheckOrigin: func(*http.Request) bool { return true },
	// A request that is not a valid WebSocket handshake gets the SPEC's
	// envelope, not the library's plain-text answer.
	Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		code := "VALIDATION_FAILED"
		if status >= 500 {
			code = "INTERNAL"
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(envelope{Error: errorBody{Code: code, Message: "websocket handshake: " + reason.Error()}})
	},
}

// live upgrades to a WebSocket, sends the current results at once, then a
// frame whenever they change (at most once per hub interval).
func (h *handlers) live(c *gin.Context) {
	p := h.visiblePoll(c)
	if p == nil {
		return
	}
	ctx := c.Request.Context()
	first, err := h.tally.Results(ctx, p, tally.Live)
	if err != nil {
		abort(c, err)
		return
	}
	conn, err := upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	defer conn.Close()
	frames, unsubscribe := h.hub.Subscribe(p)
	defer unsubscribe()

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
	write := func(v any) error {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return conn.WriteJSON(v)
	}
	if err := write(live.Frame{Type: "results", Results: first}); err != nil {
		return
	}
	ping := time.NewTicker(livePingEvery)
	defer ping.Stop()
	for {
		select {
		case <-closed:
			return
		case <-ctx.Done():
			return
		case f := <-frames:
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, f); err != nil {
				loggerFrom(c).Debug("live write", zap.Error(err))
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				return
			}
		}
	}
}

// A live socket is pinged every livePingEvery and closed when no pong (or
// other frame) arrived within livePongWait.
const (
	livePingEvery = 30 * time.Second
	livePongWait  = 75 * time.Second
)
