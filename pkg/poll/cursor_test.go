package poll

import (
	"errors"
	"testing"

	"github.com/tally-vote/tally/pkg/id"
)

func TestCursors(t *testing.T) {
	c := NewCursors([]byte("secret"))
	owner := id.New()
	state := []byte{0x01, 0x02, 0xfe, 0x00, 0x7f}
	good := c.Seal(owner, state)
	if got, err := c.Open(owner, good); err != nil || string(got) != string(state) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if got, err := c.Open(owner, ""); err != nil || got != nil {
		t.Fatalf("first page: %v %v", got, err)
	}
	if c.Seal(owner, nil) != "" {
		t.Fatal("no state must give no cursor")
	}
	for name, bad := range map[string]string{
		"never issued":   "__main__",
		"no signature":   good[:len(good)-23],
		"other owner":    c.Seal(id.New(), state),
		"other key":      NewCursors([]byte("other")).Seal(owner, state),
		"tampered state": "AQID" + good[len("AQL-AH8"):],
		"not base64":     "!!!.???",
		"empty parts":    ".",
		"oversized":      string(make([]byte, 10000)) + ".x",
	} {
		if _, err := c.Open(owner, bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("%s: %v, want ErrBadCursor", name, err)
		}
	}
}
