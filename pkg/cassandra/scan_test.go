package cassandra

import (
	"math"
	"testing"

	"github.com/tally-vote/tally/pkg/scan"
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
			width := func(r scan.Range) uint64 { return uint64(r.Hi) - uint64(r.Lo) }
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

func TestPlanRanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens []int64
		splits int
	}{
		{"no ring", nil, 8},
		{"one token", []int64{0}, 1},
		{"vnodes", []int64{-9e18, -3e18, -1, 5, 4e18, 9e18}, 64},
		{"unsorted with duplicates and extremes", []int64{7e18, math.MinInt64, -2e18, 7e18, math.MaxInt64}, 5},
		{"more tokens than splits", []int64{-6e18, -4e18, -2e18, 0, 2e18, 4e18, 6e18}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := planRanges(tc.tokens, tc.splits)
			if len(rs) < tc.splits {
				t.Fatalf("%d ranges, want at least %d", len(rs), tc.splits)
			}
			if rs[0].Lo != math.MinInt64 || !rs[0].First || rs[len(rs)-1].Hi != math.MaxInt64 {
				t.Fatalf("ranges do not span the ring: first %v, last %v", rs[0], rs[len(rs)-1])
			}
			for i, r := range rs {
				if r.Lo >= r.Hi || (i > 0 && (r.Lo != rs[i-1].Hi || r.First)) {
					t.Fatalf("range %d %v does not continue %v", i, r, rs[max(i-1, 0)])
				}
				// No range crosses a ring token: each lies within one
				// node's token range.
				for _, tok := range tc.tokens {
					if r.Lo < tok && tok < r.Hi {
						t.Fatalf("range %v crosses ring token %d", r, tok)
					}
				}
			}
			// Ring tokens are range bounds.
			for _, tok := range tc.tokens {
				found := false
				for _, r := range rs {
					found = found || r.Hi == tok || r.Lo == tok
				}
				if !found {
					t.Fatalf("ring token %d is no range bound", tok)
				}
			}
		})
	}
}
