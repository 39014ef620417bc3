package count

// RunoffTieRule is instant-runoff's rule for a tie for last place, in words
// for the result and the docs.
const RunoffTieRule = "backward countback (the tied option with fewer votes in the latest earlier round where they differ is eliminated; ACT Electoral Act, Sch. 4 cl. 8(2)), then " + LotRule + ", stage \"round N\""

// Ways a round's elimination was decided.
const (
	TieBreakNone      = ""
	TieBreakCountback = "countback"
	TieBreakLot       = "lot"
)

// RunoffRound is one round of an instant-runoff count.
type RunoffRound struct {
	Round int `json:"round"`
	// Counts holds every option still in the count, in display order,
	// with the ballots whose highest-ranked continuing option it is.
	Counts []OptionVotes `json:"counts"`
	// Exhausted counts ballots that rank no continuing option.
	Exhausted int `json:"exhausted"`
	// Eliminated is the option this round removed, empty in the last round.
	Eliminated string `json:"eliminated,omitempty"`
	// TieBreak says how a tie for last place was settled, if there was one.
	TieBreak string `json:"tie_break,omitempty"`
}

// RunoffResult is an instant-runoff count.
type RunoffResult struct {
	Ballots int           `json:"ballots"`
	Rounds  []RunoffRound `json:"rounds"`
	Winner  string        `json:"winner,omitempty"`
	TieRule string        `json:"tie_rule"`
}

// InstantRunoff counts ranked ballots (option ids, most preferred first; a
// ballot need not rank every option). Each round gives every ballot to its
// highest-ranked option still in the count. An option holding more than
// half of the ballots not yet exhausted wins, as does the last option left;
// otherwise the option with the fewest ballots is eliminated (one per
// round, so each round's counts stay readable) and the next round begins.
// A tie for last place goes by RunoffTieRule. With no ballot ranking any
// option there is no winner.
func InstantRunoff(c Contest, ballots [][]string) RunoffResult {
	p := pack(c.Options, ballots)
	n := len(c.Options)
	r := RunoffResult{Ballots: p.ballots(), TieRule: RunoffTieRule}
	if n == 0 {
		return r
	}
	out := make([]bool, n)
	pos := make([]int, p.ballots()) // each ballot's current preference
	history := make([]int, 0, n*n)  // every round's counts, n per round
	continuing := n
	for round := 1; ; round++ {
		history = append(history, make([]int, n)...)
		counts := history[len(history)-n:]
		exhausted := 0
		for b := range pos {
			prefs := p.ballot(b)
			for pos[b] < len(prefs) && out[prefs[pos[b]]] {
				pos[b]++
			}
			if pos[b] == len(prefs) {
				exhausted++
				continue
			}
			counts[prefs[pos[b]]]++
		}
		rr := RunoffRound{Round: round, Counts: make([]OptionVotes, 0, continuing), Exhausted: exhausted}
		active, top, low := 0, -1, -1
		for i := range n {
			if out[i] {
				continue
			}
			rr.Counts = append(rr.Counts, OptionVotes{OptionID: c.Options[i], Votes: counts[i]})
			active += counts[i]
			if top < 0 || counts[i] > counts[top] {
				top = i
			}
			if low < 0 || counts[i] < counts[low] {
				low = i
			}
		}
		if active == 0 {
			r.Rounds = append(r.Rounds, rr)
			return r
		}
		if continuing == 1 || 2*counts[top] > active {
			r.Rounds = append(r.Rounds, rr)
			r.Winner = c.Options[top]
			return r
		}
		var tied []int
		for i := range n {
			if !out[i] && counts[i] == counts[low] {
				tied = append(tied, i)
			}
		}
		loser := low
		if len(tied) > 1 {
			loser, rr.TieBreak = breakRunoffTie(c, history, n, round, tied)
		}
		rr.Eliminated = c.Options[loser]
		out[loser] = true
		continuing--
		r.Rounds = append(r.Rounds, rr)
	}
}

// breakRunoffTie picks which of tied (all on the fewest ballots in round)
// is eliminated: backward countback first, then the lot.
func breakRunoffTie(c Contest, history []int, n, round int, tied []int) (int, string) {
	for earlier := round - 1; earlier >= 1 && len(tied) > 1; earlier-- {
		counts := history[(earlier-1)*n : earlier*n]
		least := counts[tied[0]]
		for _, i := range tied[1:] {
			least = min(least, counts[i])
		}
		kept := tied[:0:0]
		for _, i := range tied {
			if counts[i] == least {
				kept = append(kept, i)
			}
		}
		if len(kept) == 1 {
			return kept[0], TieBreakCountback
		}
		tied = kept
	}
	return lot(c, roundStage(round), tied), TieBreakLot
}
