package count

import (
	"reflect"
	"testing"
)

var fuzzOptions = []string{"a", "b", "c", "d", "e", "f"}

// fuzzBallots reads ballots from bytes: the first byte picks how many
// options the contest has (2–6); then each byte is an option index, and a
// byte with the high bit set ends the ballot. Repeats and unknown indexes
// are kept, so the counters see malformed ballots too.
func fuzzBallots(data []byte) (Contest, [][]string) {
	if len(data) == 0 {
		return Contest{Options: fuzzOptions[:2], Seed: "fuzz"}, nil
	}
	n := 2 + int(data[0])%5
	c := Contest{Options: fuzzOptions[:n], Seed: "fuzz"}
	var ballots [][]string
	var cur []string
	for _, b := range data[1:] {
		if b&0x80 != 0 {
			ballots = append(ballots, cur)
			cur = nil
			continue
		}
		cur = append(cur, fuzzOptions[int(b)%len(fuzzOptions)])
	}
	return c, append(ballots, cur)
}

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1, 2, 0x80, 1, 2, 0x80, 2, 0x80, 0, 0x80})
	f.Add([]byte{4, 0, 0x80, 1, 0x80, 2, 0x80, 3, 0x80, 4, 0x80, 5})
	f.Add([]byte{0, 0, 1, 0x80, 1, 0, 0x80})
}

func FuzzInstantRunoff(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ballots := fuzzBallots(data)
		r := InstantRunoff(c, ballots)
		if r.Ballots != len(ballots) || len(r.Rounds) == 0 || len(r.Rounds) > len(c.Options) {
			t.Fatalf("ballots %d rounds %d: %+v", len(ballots), len(r.Rounds), r)
		}
		prevExhausted := 0
		for k, rr := range r.Rounds {
			total := rr.Exhausted
			for _, ov := range rr.Counts {
				total += ov.Votes
			}
			if total != r.Ballots {
				t.Fatalf("round %d counts %d ballots of %d", rr.Round, total, r.Ballots)
			}
			if rr.Exhausted < prevExhausted {
				t.Fatalf("round %d un-exhausted ballots", rr.Round)
			}
			prevExhausted = rr.Exhausted
			if len(rr.Counts) != len(c.Options)-k {
				t.Fatalf("round %d has %d options", rr.Round, len(rr.Counts))
			}
			if last := k == len(r.Rounds)-1; last != (rr.Eliminated == "") {
				t.Fatalf("round %d eliminated %q", rr.Round, rr.Eliminated)
			}
		}
		last := r.Rounds[len(r.Rounds)-1]
		if r.Winner == "" {
			if last.Exhausted != r.Ballots {
				t.Fatalf("no winner with %d live ballots", r.Ballots-last.Exhausted)
			}
			return
		}
		active, won := 0, -1
		for _, ov := range last.Counts {
			active += ov.Votes
			if ov.OptionID == r.Winner {
				won = ov.Votes
			}
		}
		if won < 0 || (len(last.Counts) > 1 && 2*won <= active) {
			t.Fatalf("winner %s with %d of %d in the last round %+v", r.Winner, won, active, last)
		}
	})
}

func FuzzSchulze(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ballots := fuzzBallots(data)
		r := CountSchulze(c, ballots)
		n := len(c.Options)
		// d against its definition, ballot by ballot over every pair.
		naive := make([][]int, n)
		for i := range naive {
			naive[i] = make([]int, n)
		}
		p := pack(c.Options, ballots)
		for b := range p.ballots() {
			rank := make([]int, n)
			for i := range rank {
				rank[i] = n
			}
			for k, o := range p.ballot(b) {
				rank[o] = k
			}
			for i := range n {
				for j := range n {
					if rank[i] < rank[j] {
						naive[i][j]++
					}
				}
			}
		}
		if !reflect.DeepEqual(naive, r.D) {
			t.Fatalf("d = %v, by definition %v", r.D, naive)
		}
		for i := range n {
			for j := range n {
				if i != j && r.D[i][j]+r.D[j][i] > r.Ballots {
					t.Fatalf("d[%d][%d]+d[%d][%d] exceeds %d ballots", i, j, j, i, r.Ballots)
				}
				if r.P[i][j] > r.Ballots {
					t.Fatalf("p[%d][%d] = %d exceeds the ballots", i, j, r.P[i][j])
				}
			}
		}
		// Schulze (2011) proves the strongest-path relation always leaves
		// an option unbeaten, so with ballots there is always a winner,
		// and it beats or ties everyone by p.
		if r.Ballots > 0 && r.Winner == "" {
			t.Fatalf("no winner: %+v", r)
		}
		if r.Winner == "" {
			return
		}
		w := -1
		for i, o := range c.Options {
			if o == r.Winner {
				w = i
			}
		}
		for j := range n {
			if r.P[j][w] > r.P[w][j] {
				t.Fatalf("winner %s is beaten by %s: p %v", r.Winner, c.Options[j], r.P)
			}
		}
		if r.Ranking[0].Rank != 1 {
			t.Fatalf("ranking %+v", r.Ranking)
		}
		for k := 1; k < len(r.Ranking); k++ {
			if r.Ranking[k].Wins > r.Ranking[k-1].Wins {
				t.Fatalf("ranking out of order %+v", r.Ranking)
			}
		}
	})
}
