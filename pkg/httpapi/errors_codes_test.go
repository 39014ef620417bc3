package httpapi

import (
	"testing"

	"github.com/tally-vote/tally/pkg/apperr"
)

// TestEveryCodeHasAStatus holds the one status table to the closed set of
// codes: a code added to apperr without a status fails here, not as a 500.
func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range apperr.Codes() {
		if statusByCode[c] < 400 {
			t.Errorf("code %s has no HTTP status", c)
		}
		if back, ok := apperr.ParseCode(c.String()); !ok || back != c {
			t.Errorf("code %s does not read back (%v, %v)", c, back, ok)
		}
	}
	if len(statusByCode) != len(apperr.Codes()) {
		t.Errorf("status table has %d entries for %d codes", len(statusByCode), len(apperr.Codes()))
	}
}
