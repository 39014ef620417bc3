package cassandra

import (
	"math"
	"testing"
)

func TestSplitRing(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 16, 64, 1000} {
		t.Run("", func(t *testing.T) {
			rs := splitRing(n)
			if want := max(n, 1); len(rs) != want {
				t.Fatalf("splitRing(%d): %d ranges, want %d", n, len(rs), want)
			}
			if rs[0].Lo != math.MinInt64 || !rs[0].First {
				t.Fatalf("first range %+v does not start at the minimum token inclusively", rs[0])
			}
			if rs[len(rs)-1].Hi != math.MaxInt64 {
				t.Fatalf("last range %+v does not end at the maximum token", rs[len(rs)-1])
			}
			for i, r := range rs {
				if r.Lo >= r.Hi {
					t.Fatalf("range %d is empty or inverted: %+v", i, r)
				}
				if i > 0 && (r.Lo != rs[i-1].Hi || r.First) {
					t.Fatalf("range %d %+v does not continue range %d %+v", i, r, i-1, rs[i-1])
				}
			}
			// Widths differ by at most one token: a uniform split.
			width := func(r tokenRange) uint64 { return uint64(r.Hi) - uint64(r.Lo) }
			// The last range ends at 2^63-1, one token short of the others.
			lo, hi := width(rs[0]), width(rs[0])
			for _, r := range rs[:len(rs)-1] {
				lo, hi = min(lo, width(r)), max(hi, width(r))
			}
			if hi-lo > 1 {
				t.Fatalf("range widths vary from %d to %d", lo, hi)
			}
		})
	}
}
