package fence

import (
	"strings"
	"testing"
)

func TestLiftFenceIsEmbedded(t *testing.T) {
	if !strings.Contains(liftFenceLua, `"DEL", KEYS[1]`) || liftFence.Hash() == "" {
		t.Fatalf("lift_fence.lua: %q", liftFenceLua)
	}
}
