package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
)

func router(t *testing.T) *gin.Engine {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func get(r http.Handler, path, host string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if host != "" {
		req.Host = host
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestRoutes(t *testing.T) {
	r := router(t)
	for _, tc := range []struct {
		path, wantType string
		wantStatus     int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/p/0f8fad5b-d9cb-469f-a165-70867728950e", "text/html; charset=utf-8", 200},
		{"/assets/app.css", "text/css; charset=utf-8", 200},
		{"/assets/js/main.js", "text/javascript; charset=utf-8", 200},
		{"/assets/js/pow-worker.js", "text/javascript; charset=utf-8", 200},
		{"/assets/index.html", "", 404},
		{"/assets/", "", 404},
		{"/assets/nope.js", "", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(r, tc.path, "")
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if tc.wantType != "" && w.Header().Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tc.wantType)
			}
			if tc.wantStatus == 200 && !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("CSP %q", w.Header().Get("Content-Security-Policy"))
			}
		})
	}
}

func TestCSP(t *testing.T) {
	r := router(t)
	for _, tc := range []struct {
		host   string
		wantWS bool
	}{
		{"127.0.0.1:8080", true},
		{"polls.example.com", true},
		{"[::1]:8080", true},
		{"evil;script-src *", false},
		{"a b", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			csp := get(r, "/", tc.host).Header().Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "script-src 'self';", "frame-ancestors 'none'", "connect-src 'self'", "base-uri 'none'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP lacks %q: %s", d, csp)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows inline or eval: %s", csp)
			}
			if got := strings.Contains(csp, "ws://"+tc.host); got != tc.wantWS {
				t.Errorf("ws source for host %q: %v, want %v (%s)", tc.host, got, tc.wantWS, csp)
			}
			if strings.Count(csp, "script-src") != 1 {
				t.Errorf("a host added a directive: %s", csp)
			}
		})
	}
}

// TestNoInlineCode holds the assets to what the CSP allows: scripts only
// from files, no event-handler or style attributes, no javascript: URLs.
func TestNoInlineCode(t *testing.T) {
	scriptTag := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	handlerAttr := regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	styleAttr := regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		s := string(b)
		for _, m := range scriptTag.FindAllStringSubmatch(s, -1) {
			if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script %q", path, m[0])
			}
		}
		if handlerAttr.MatchString(s) {
			t.Errorf("%s: inline event handler attribute", path)
		}
		if styleAttr.MatchString(s) || strings.Contains(s, "setAttribute('style'") {
			t.Errorf("%s: style attribute", path)
		}
		if strings.Contains(strings.ToLower(s), "javascript:") || strings.Contains(s, "eval(") || strings.Contains(s, "new Function") {
			t.Errorf("%s: javascript: URL or eval", path)
		}
		if strings.Contains(s, "document.cookie") {
			t.Errorf("%s: tokens must stay in sessionStorage, never cookies", path)
		}
		// localStorage holds the voter's receipt (receipt.js, which keeps
		// it for a reload) and nothing else: never a token.
		if strings.Contains(s, "localStorage") && (path != "static/js/receipt.js" || strings.Contains(s, "tokens")) {
			t.Errorf("%s: tokens must stay in sessionStorage, never localStorage (only receipt.js keeps the receipt there)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEveryCodeHasAMessage holds api.js's MESSAGES to every code the
// server sends, so no error reaches a person as a bare code.
func TestEveryCodeHasAMessage(t *testing.T) {
	b, err := fs.ReadFile(static, "static/js/api.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, c := range apperr.Codes() {
		if !regexp.MustCompile(`(?m)^\s*` + c.String() + `: '`).MatchString(src) {
			t.Errorf("api.js MESSAGES has no sentence for %s", c)
		}
	}
}
