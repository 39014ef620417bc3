package httpapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/web"
)

// TestOpenAPICoversEveryRoute checks the served document against the routes
// the router actually registers.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	if openAPIJSON == nil {
		t.Fatal("openapi.yaml does not parse")
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	r, err := NewRouter(Deps{Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range r.Routes() {
		if strings.HasPrefix(rt.Path, "/debug/") || slices.Contains(web.Routes, rt.Path) {
			continue
		}
		path := rt.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("route %s %s is not in openapi.yaml", rt.Method, path)
			continue
		}
		if _, ok := ops[strings.ToLower(rt.Method)]; !ok {
			t.Errorf("route %s %s has no %s operation in openapi.yaml", rt.Method, path, strings.ToLower(rt.Method))
		}
	}
}
