package admission

import (
	"strings"
	"testing"
)

// The flag scripts are embedded, and speak the flag's value protocol
// (redisx.FlagPending, redisx.FlagQueued) the admission script sets.
func TestScriptsAreEmbedded(t *testing.T) {
	for name, body := range map[string]string{"release_flag.lua": releaseFlagLua, "mark_queued.lua": markQueuedLua} {
		if !strings.Contains(body, `"GET", KEYS[1]`) || !strings.Contains(body, `"q:"`) {
			t.Errorf("%s: %q", name, body)
		}
	}
	if releaseFlag.Hash() == "" || markQueued.Hash() == "" {
		t.Fatal("no script")
	}
}
