package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestEmbedCSP: the widget's CSP is the page's with frame-ancestors naming
// the poll's origins, or 'none' (and X-Frame-Options: DENY kept) when it
// lists none; an origin that could end the directive is never written.
func TestEmbedCSP(t *testing.T) {
	e, err := NewEmbed()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		status  int
		origins []string
		wantFA  string
		wantXFO string
	}{
		{"listed", 200, []string{"https://blog.example.com", "http://127.0.0.2:8080"},
			"frame-ancestors https://blog.example.com http://127.0.0.2:8080;", ""},
		{"none", 200, nil, "frame-ancestors 'none';", "DENY"},
		{"not found", 404, nil, "frame-ancestors 'none';", "DENY"},
		{"unsafe entries dropped", 200, []string{"https://a.example; script-src *", "https://b.example", "'self'", "*"},
			"frame-ancestors https://b.example;", ""},
		{"only unsafe entries", 200, []string{"https://a.example https://evil.example", "*"}, "frame-ancestors 'none';", "DENY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gin.SetMode(gin.ReleaseMode)
			r := gin.New()
			r.GET("/embed/:poll_id", func(c *gin.Context) {
				// What httpapi's securityHeaders sets on every answer.
				c.Header("X-Frame-Options", "DENY")
				c.Header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
				e.Serve(c, tc.status, tc.origins)
			})
			w := get(r, "/embed/0f8fad5b-d9cb-469f-a165-70867728950e", "tally.example:8080")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			h := w.Header()
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, tc.wantFA) {
				t.Errorf("CSP %q, want %q", csp, tc.wantFA)
			}
			if strings.Count(csp, "frame-ancestors") != 1 || strings.Count(csp, "script-src") != 1 || strings.Contains(csp, "*") {
				t.Errorf("CSP has a stray directive or wildcard: %s", csp)
			}
			for _, d := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self' ws://tally.example:8080"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP lacks %q: %s", d, csp)
				}
			}
			if got := h.Get("X-Frame-Options"); got != tc.wantXFO {
				t.Errorf("X-Frame-Options %q, want %q", got, tc.wantXFO)
			}
			if h.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(w.Body.String(), "/assets/js/embed.js") {
				t.Errorf("not the widget page: %s %.80q", h.Get("Content-Type"), w.Body.String())
			}
		})
	}
}

// TestEmbedNotAnAsset: the widget's HTML is served only by its route, with
// its poll's CSP, never as a static asset.
func TestEmbedNotAnAsset(t *testing.T) {
	r := router(t)
	if w := get(r, "/assets/embed.html", ""); w.Code != http.StatusNotFound {
		t.Errorf("/assets/embed.html: %d", w.Code)
	}
	if w := get(r, "/assets/js/embed.js", ""); w.Code != http.StatusOK {
		t.Errorf("/assets/js/embed.js: %d", w.Code)
	}
}
