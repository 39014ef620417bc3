package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
)

// TestAcceptedAnswerMatchesCJSON: the 202 answer written by appendAccepted
// and writeJSON is, header for header and byte for byte, what c.JSON wrote
// for acceptedResponse.
func TestAcceptedAnswerMatchesCJSON(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	ids := []id.ID{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for range 200 {
		ids = append(ids, id.New())
	}
	accepted := loadContract(t).Components.Schemas["VoteAccepted"].Value
	salts := [][]byte{nil, make([]byte, receipt.SaltSize), bytes.Repeat([]byte{0xff, 0xfb, 0xbf}, 11)[:receipt.SaltSize]}
	for i, pollID := range ids {
		requestID, voteID, salt := ids[(i+1)%len(ids)], ids[(i+2)%len(ids)], salts[i%len(salts)]
		want := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(want)
		shape := acceptedResponse{Status: "accepted", PollID: pollID.String(),
			RequestID: requestID.String(), Message: "vote is being processed"}
		if salt != nil {
			shape.VoteID, shape.Salt = voteID.String(), receipt.EncodeSalt(salt)
		}
		c.JSON(http.StatusAccepted, shape)
		got := httptest.NewRecorder()
		c, _ = gin.CreateTestContext(got)
		b := appendAccepted(make([]byte, 0, acceptedSize), pollID, requestID, voteID, salt)
		if (salt != nil) != (len(b) == acceptedSize) || len(b) > acceptedSize {
			t.Fatalf("answer of %d bytes, acceptedSize %d (salt %v)", len(b), acceptedSize, salt != nil)
		}
		writeJSON(c, http.StatusAccepted, b)
		var raw any
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if err := accepted.VisitJSON(raw); err != nil {
			t.Fatalf("%s does not match VoteAccepted: %v", b, err)
		}
		if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) ||
			!maps.EqualFunc(got.Header(), want.Header(), slices.Equal) {
			t.Fatalf("writeJSON: %d %v %s\nc.JSON:    %d %v %s", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
	// A Content-Type set before is kept, as c.JSON keeps it.
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Header("Content-Type", "application/problem+json")
	writeJSON(c, http.StatusAccepted, []byte(`{}`))
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// TestRequestLoggerCarriesTheRequestID: the logger is built only when a
// line is written, and its lines (the access line, an error) still carry
// the request's http_request_id.
func TestRequestLoggerCarriesTheRequestID(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	core, logs := observer.New(zapcore.DebugLevel)
	r := gin.New()
	r.Use(requestContext(zap.New(core)))
	r.GET("/fail", func(c *gin.Context) { abort(c, errBoundary) })
	req := httptest.NewRequest(http.MethodGet, "/fail", nil)
	req.Header.Set("X-Request-Id", "rid-42")
	r.ServeHTTP(httptest.NewRecorder(), req)
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
		if got := e.ContextMap()["http_request_id"]; got != "rid-42" {
			t.Fatalf("line %q carries http_request_id %v", e.Message, got)
		}
	}
	if !slices.Equal(msgs, []string{"request failed", "http request"}) {
		t.Fatalf("lines %q", msgs)
	}
}

// A shed vote writes no log line: it is counted, and at overload a line per
// refusal would spend the CPU the bound exists to save. Other 5xx do.
func TestShedRequestsAreCountedNotLogged(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	core, logs := observer.New(zapcore.InfoLevel)
	r := gin.New()
	r.Use(requestContext(zap.New(core)))
	r.GET("/shed", func(c *gin.Context) { abort(c, apperr.ErrOverloaded) })
	r.GET("/down", func(c *gin.Context) { abort(c, apperr.Unavailable("insert vote", errors.New("timeout"))) })
	for _, path := range []string{"/shed", "/down"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s: %d, Retry-After %q", path, w.Code, w.Header().Get("Retry-After"))
		}
	}
	if n := logs.FilterMessage("request failed").Len(); n != 1 {
		t.Fatalf("%d error lines, want 1 (the outage, not the shed vote)", n)
	}
}
