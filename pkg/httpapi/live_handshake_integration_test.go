//go:build integration

package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// openapi.yaml documents the /live 400 for a request that is not a
// WebSocket handshake as the error envelope (live.go's Upgrader.Error), not
// the WebSocket library's plain text.
func TestLiveRefusesANonHandshakeWithTheEnvelope(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	id, _ := e.c.Poll(owner, nil)
	r := e.c.Do("GET", "/v1/polls/"+id+"/live", owner, nil)
	if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("plain GET on /live: %d %q %s, want 400 VALIDATION_FAILED in the JSON envelope",
			r.Status, r.Header.Get("Content-Type"), r.Raw)
	}
}
