package poll

import (
	"errors"
	"testing"

	"github.com/tally-vote/tally/pkg/id"
)

// FuzzCursor: a sealed cursor opens to its state for its owner only, and
// no other string opens, however close to an issued one.
func FuzzCursor(f *testing.F) {
	f.Add([]byte{1, 2, 0xfe, 0, 0x7f}, []byte("owner-one-16byte"), "__main__", uint16(0), byte(1))
	f.Add([]byte("paging-state"), []byte("owner-two-16byte"), "", uint16(5), byte('A'))
	f.Add([]byte{0}, []byte{}, "AQID.xyz", uint16(30), byte('\n'))
	c := NewCursors([]byte("fuzz cursor secret"))
	f.Fuzz(func(t *testing.T, state, ownerBytes []byte, cursor string, at uint16, b byte) {
		var owner id.ID
		copy(owner[:], ownerBytes)
		if len(state) > maxPagingState {
			state = state[:maxPagingState]
		}
		sealed := c.Seal(owner, state)
		got, err := c.Open(owner, sealed)
		if err != nil || string(got) != string(state) {
			t.Fatalf("round trip of %x: %x %v", state, got, err)
		}
		if sealed == "" {
			return
		}
		other := owner
		other[0] ^= 1
		if _, err := c.Open(other, sealed); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("another owner opened the cursor: %v", err)
		}
		// One byte replaced, inserted or removed is refused.
		i := int(at) % len(sealed)
		for _, m := range []string{
			sealed[:i] + string([]byte{b}) + sealed[i+1:],
			sealed[:i] + string([]byte{b}) + sealed[i:],
			sealed[:i] + sealed[i+1:],
		} {
			if m == sealed {
				continue
			}
			if _, err := c.Open(owner, m); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("mutated cursor %q (issued %q) opened: %v", m, sealed, err)
			}
		}
		// An arbitrary string opens only if it is exactly the cursor
		// sealed for what it opens to.
		if st, err := c.Open(owner, cursor); err == nil && cursor != "" && c.Seal(owner, st) != cursor {
			t.Fatalf("cursor %q opened but was never issued", cursor)
		} else if err != nil && !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: %v, want ErrBadCursor", cursor, err)
		}
	})
}
