package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadBody(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name    string
		max     int       // BodyMaxPerClient; the byte cap is 16
		held    int       // bodies of the client already being read
		body    string    // "" sends none
		chunked bool      // no Content-Length
		method  string    // "" is POST
		want    int       // status
		wantGot string    // what the handler read
		header  [2]string // a header the answer must carry
		refused float64   // tally_http_bodies_refused_total after
	}{
		{name: "a body reaches the handler whole", max: 2, body: `{"a":1}`, want: http.StatusOK, wantGot: `{"a":1}`},
		{name: "a chunked body too", max: 2, body: `{"a":1}`, chunked: true, want: http.StatusOK, wantGot: `{"a":1}`},
		{name: "no body is not counted", max: 1, held: 1, want: http.StatusOK},
		{name: "under the cap", max: 2, held: 1, body: `{}`, want: http.StatusOK, wantGot: `{}`},
		{name: "at the cap refused at once", max: 2, held: 2, body: `{}`, want: http.StatusTooManyRequests,
			header: [2]string{"Retry-After", "1"}, refused: 1},
		{name: "the refusal closes the connection", max: 1, held: 1, body: `{}`, want: http.StatusTooManyRequests,
			header: [2]string{"Connection", "close"}, refused: 1},
		{name: "a GET's body is left to its handler", max: 1, held: 1, method: http.MethodGet, body: `{}`, want: http.StatusOK, wantGot: `{}`},
		{name: "no cap", max: 0, held: 100, body: `{}`, want: http.StatusOK, wantGot: `{}`},
		{name: "declared too large", max: 2, body: strings.Repeat("x", 17), want: http.StatusRequestEntityTooLarge},
		{name: "chunked too large", max: 2, body: strings.Repeat("x", 17), chunked: true, want: http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newBodyGate(Config{BodyMaxPerClient: tc.max}, prometheus.NewRegistry())
			for range tc.held {
				if _, err := g.acquire("192.0.2.1"); err != nil {
					t.Fatal(err)
				}
			}
			var got string
			r := gin.New()
			r.Use(readBody(16, g))
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r.Handle(method, "/", func(c *gin.Context) {
				b, err := io.ReadAll(c.Request.Body)
				if err != nil {
					t.Errorf("handler read: %v", err)
				}
				got = string(b)
				c.Status(http.StatusOK)
			})
			var body io.Reader = http.NoBody
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(method, "/", body)
			req.RemoteAddr = "192.0.2.1:4242"
			if tc.chunked {
				req.ContentLength = -1
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if got != tc.wantGot {
				t.Fatalf("handler read %q, want %q", got, tc.wantGot)
			}
			if h := tc.header; h[0] != "" && w.Header().Get(h[0]) != h[1] {
				t.Fatalf("%s: %q, want %q", h[0], w.Header().Get(h[0]), h[1])
			}
			if n := testutil.ToFloat64(g.refused); n != tc.refused {
				t.Fatalf("refused %v, want %v", n, tc.refused)
			}
			// What the request held is given back: only the bodies held
			// before it remain.
			g.mu.Lock()
			reading, total := g.reading["192.0.2.1"], g.total
			g.mu.Unlock()
			if reading != tc.held || total != tc.held {
				t.Fatalf("bodies reading %d (client) %d (total), want %d", reading, total, tc.held)
			}
		})
	}
}
