package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// TestPageHeaders: the page gets its own CSP (scripts from this origin),
// while API answers keep default-src 'none'; both forbid framing.
func TestPageHeaders(t *testing.T) {
	r, err := NewRouter(Deps{Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, wantCSP string
	}{
		{"/", "script-src 'self'"},
		{"/p/0f8fad5b-d9cb-469f-a165-70867728950e", "script-src 'self'"},
		{"/assets/js/api.js", "script-src 'self'"},
		// The embed widget for an id that names no poll: the page, never
		// framable.
		{"/embed/nope", "script-src 'self'"},
		{"/v1/openapi.json", "default-src 'none'; frame-ancestors 'none'"},
		{"/v1/nope", "default-src 'none'; frame-ancestors 'none'"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			h := w.Header()
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, tc.wantCSP) || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("CSP %q, want it to hold %q and frame-ancestors 'none'", csp, tc.wantCSP)
			}
			if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Frame-Options %q, X-Content-Type-Options %q", h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
			}
		})
	}
}
