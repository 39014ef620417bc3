//go:build integration

package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// frameAncestors is the frame-ancestors directive of an answer's CSP.
func frameAncestors(t *testing.T, r testenv.Response) string {
	t.Helper()
	for _, d := range strings.Split(r.Header.Get("Content-Security-Policy"), ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, "frame-ancestors ") {
			return strings.TrimPrefix(d, "frame-ancestors ")
		}
	}
	t.Fatalf("no frame-ancestors in %q", r.Header.Get("Content-Security-Policy"))
	return ""
}

// embedOriginsOf reads settings.embed_origins from a poll document.
func embedOriginsOf(t *testing.T, r testenv.Response) []string {
	t.Helper()
	s, _ := r.Body["settings"].(map[string]any)
	list, ok := s["embed_origins"].([]any)
	if !ok {
		t.Fatalf("no settings.embed_origins list: %s", r.Raw)
	}
	out := make([]string, len(list))
	for i, o := range list {
		out[i], _ = o.(string)
	}
	return out
}

// storedEmbedOrigins reads polls.embed_origins for a poll straight from
// the test's keyspace.
func (e *env) storedEmbedOrigins(t *testing.T, pollID string) []string {
	t.Helper()
	pid, _ := id.Parse(pollID)
	var got []string
	if err := e.app.CQL.Session.Query(`SELECT embed_origins FROM polls WHERE poll_id = ? LIMIT 1`, pid).Scan(&got); err != nil {
		t.Fatalf("read embed_origins: %v", err)
	}
	return got
}

// TestEmbedFrameAncestors: /embed/{id} may be framed by exactly the origins
// its poll lists, as the owner changes them, on this process and another
// one sharing the stack; a poll that lists none, an unknown poll and every
// other route keep frame-ancestors 'none' and X-Frame-Options: DENY.
func TestEmbedFrameAncestors(t *testing.T) {
	cfg := testenv.Config(t)
	a, srvA := testenv.Server(t, cfg)
	_, srvB := testenv.Server(t, cfg)
	e := &env{app: a, c: testenv.NewClient(t, srvA.URL)}
	other := testenv.NewClient(t, srvB.URL)
	owner, _ := e.c.Account()
	stranger, _ := e.c.Account()
	listed := []string{"https://blog.example.com", "http://127.0.0.2:8080"}
	framed, _ := e.c.Poll(owner, map[string]any{"embed_origins": listed})
	plain, _ := e.c.Poll(owner, nil)

	if got := embedOriginsOf(t, e.c.Do("GET", "/v1/polls/"+framed, "", nil).Must(t, http.StatusOK)); !slices.Equal(got, listed) {
		t.Fatalf("document embed_origins %v, want %v", got, listed)
	}
	if got := embedOriginsOf(t, e.c.Do("GET", "/v1/polls/"+plain, "", nil).Must(t, http.StatusOK)); len(got) != 0 {
		t.Fatalf("a new poll lists %v", got)
	}
	if got := e.storedEmbedOrigins(t, framed); !slices.Equal(got, listed) {
		t.Fatalf("stored embed_origins %v, want %v", got, listed)
	}

	embed := func(c *testenv.Client, pollID string, status int, wantFA string) {
		t.Helper()
		r := c.Do("GET", "/embed/"+pollID, "", nil)
		if r.Status != status || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.Raw), "/assets/js/embed.js") {
			t.Fatalf("/embed/%s: %d %s %.100s", pollID, r.Status, r.Header.Get("Content-Type"), r.Raw)
		}
		if fa := frameAncestors(t, r); fa != wantFA {
			t.Fatalf("/embed/%s: frame-ancestors %s, want %s", pollID, fa, wantFA)
		}
		wantXFO := "DENY"
		if wantFA != "'none'" {
			wantXFO = ""
		}
		if xfo := r.Header.Get("X-Frame-Options"); xfo != wantXFO {
			t.Fatalf("/embed/%s: X-Frame-Options %q, want %q", pollID, xfo, wantXFO)
		}
	}
	embed(e.c, framed, http.StatusOK, "https://blog.example.com http://127.0.0.2:8080")
	embed(other, framed, http.StatusOK, "https://blog.example.com http://127.0.0.2:8080")
	embed(e.c, plain, http.StatusOK, "'none'")
	embed(e.c, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", http.StatusNotFound, "'none'")
	embed(e.c, "not-a-poll", http.StatusNotFound, "'none'")

	// Every other route, including the share page of the framable poll,
	// still forbids framing.
	for _, path := range []string{"/", "/p/" + framed, "/assets/js/poll.js", "/assets/app.css", "/v1/polls/" + framed,
		"/v1/polls/" + framed + "/results", "/v1/openapi.json", "/healthz", "/v1/nope"} {
		r := e.c.Do("GET", path, "", nil)
		if fa := frameAncestors(t, r); fa != "'none'" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: frame-ancestors %s, X-Frame-Options %q", path, fa, r.Header.Get("X-Frame-Options"))
		}
	}

	// Refused changes change nothing.
	for _, bad := range []any{[]string{"https://*.example.com"}, []string{"https://blog.example.com/posts"},
		[]string{"blog.example.com"}, []string{"https://a.example", "https://A.example"}, "https://a.example",
		[]string{"https://a.example; script-src *"}} {
		r := e.c.Do("PATCH", "/v1/polls/"+framed, owner, map[string]any{"settings": map[string]any{"embed_origins": bad}})
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Fatalf("PATCH embed_origins %v: %d %s", bad, r.Status, r.Raw)
		}
	}
	if r := e.c.Do("PATCH", "/v1/polls/"+framed, stranger, map[string]any{"settings": map[string]any{"embed_origins": []string{"https://evil.example"}}}); r.Status != http.StatusForbidden {
		t.Fatalf("a stranger's PATCH: %d %s", r.Status, r.Raw)
	}
	if got := e.storedEmbedOrigins(t, framed); !slices.Equal(got, listed) {
		t.Fatalf("after refused changes, stored %v", got)
	}
	embed(e.c, framed, http.StatusOK, "https://blog.example.com http://127.0.0.2:8080")

	// The owner replaces the list: this process answers with it at once,
	// the other once its view of the poll is re-read (a change notice, or
	// its cache TTL).
	changed := e.c.Do("PATCH", "/v1/polls/"+framed, owner, map[string]any{"settings": map[string]any{"embed_origins": []string{"https://news.example:8443"}}}).
		Must(t, http.StatusOK)
	if got := embedOriginsOf(t, changed); !slices.Equal(got, []string{"https://news.example:8443"}) {
		t.Fatalf("PATCH answered embed_origins %v", got)
	}
	embed(e.c, framed, http.StatusOK, "https://news.example:8443")
	eventually(t, 5*time.Second, "the other process's header", func() bool {
		return frameAncestors(t, other.Do("GET", "/embed/"+framed, "", nil)) == "https://news.example:8443"
	})

	// An empty list clears it: stored as null, framed by nobody.
	e.c.Do("PATCH", "/v1/polls/"+framed, owner, map[string]any{"settings": map[string]any{"embed_origins": []string{}}}).
		Must(t, http.StatusOK)
	if got := e.storedEmbedOrigins(t, framed); got != nil {
		t.Fatalf("cleared list stored as %v", got)
	}
	embed(e.c, framed, http.StatusOK, "'none'")
	eventually(t, 5*time.Second, "the other process's header", func() bool {
		return frameAncestors(t, other.Do("GET", "/embed/"+framed, "", nil)) == "'none'"
	})
	// Another setting's change leaves the list alone.
	e.c.Do("PATCH", "/v1/polls/"+plain, owner, map[string]any{"settings": map[string]any{"embed_origins": []string{"https://blog.example.com"}}}).
		Must(t, http.StatusOK)
	e.c.Do("PATCH", "/v1/polls/"+plain, owner, map[string]any{"settings": map[string]any{"results_visibility": "after_vote"}}).
		Must(t, http.StatusOK)
	embed(e.c, plain, http.StatusOK, "https://blog.example.com")
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
