package count

import "sort"

// SchulzeTieRule is the Schulze count's rule when more than one option is
// unbeaten, in words for the result and the docs.
const SchulzeTieRule = "several options unbeaten by strongest paths: " + LotRule + ", stage \"winner\""

// SchulzeResult is a Schulze count. D and P are indexed like Options:
// D[i][j] is how many ballots rank Options[i] above Options[j], P[i][j] the
// strength of the strongest path from i to j.
type SchulzeResult struct {
	Ballots int           `json:"ballots"`
	Options []string      `json:"options"`
	D       [][]int       `json:"d"`
	P       [][]int       `json:"p"`
	Ranking []SchulzeRank `json:"ranking"`
	// Winners are the options no other option beats; Winner is one of
	// them, drawn by lot when there are several.
	Winners []string `json:"winners,omitempty"`
	Winner  string   `json:"winner,omitempty"`
	TieRule string   `json:"tie_rule"`
}

// SchulzeRank is an option's place: Wins counts the options it beats by
// strongest paths; options with equal Wins share a Rank.
type SchulzeRank struct {
	OptionID string `json:"option_id"`
	Rank     int    `json:"rank"`
	Wins     int    `json:"wins"`
}

// CountSchulze counts ranked ballots by the Schulze method (Schulze, Social
// Choice and Welfare 36(2), 2011): a ballot prefers every option it ranks
// to every option it leaves out, and is indifferent among those left out.
// A path's strength is its weakest link (winning votes), and X beats Y
// when p[X][Y] > p[Y][X]. That relation is transitive, so ordering by the
// number of options each beats is the Schulze ranking.
func CountSchulze(c Contest, ballots [][]string) SchulzeResult {
	p := pack(c.Options, ballots)
	n := len(c.Options)
	r := SchulzeResult{Ballots: p.ballots(), Options: append([]string(nil), c.Options...), TieRule: SchulzeTieRule}
	// A ballot prefers i to j when it ranks i and either leaves j out or
	// ranks it later: d[i][j] = ranked[i] - before[j][i], where ranked[i]
	// counts the ballots ranking i and before[j][i] those ranking j ahead
	// of i. So a ballot costs k²/2 for its k ranked options, not n², which
	// matters for the short rankings most voters give on long option lists.
	ranked := make([]int, n)
	before := make([]int, n*n)
	for b := range p.ballots() {
		prefs := p.ballot(b)
		for a, o := range prefs {
			ranked[o]++
			for _, later := range prefs[a+1:] {
				before[o*n+later]++
			}
		}
	}
	d := make([]int, n*n)
	for i := range n {
		for j := range n {
			if i != j {
				d[i*n+j] = ranked[i] - before[j*n+i]
			}
		}
	}
	ps := make([]int, n*n)
	for i := range n {
		for j := range n {
			if i != j && d[i*n+j] > d[j*n+i] {
				ps[i*n+j] = d[i*n+j]
			}
		}
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			for k := range n {
				if k != i && k != j {
					ps[j*n+k] = max(ps[j*n+k], min(ps[j*n+i], ps[i*n+k]))
				}
			}
		}
	}
	r.D, r.P = square(d, n), square(ps, n)
	wins := make([]int, n)
	var unbeaten []int
	for i := range n {
		beaten := false
		for j := range n {
			if ps[i*n+j] > ps[j*n+i] {
				wins[i]++
			}
			if ps[j*n+i] > ps[i*n+j] {
				beaten = true
			}
		}
		if !beaten {
			unbeaten = append(unbeaten, i)
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return wins[order[a]] > wins[order[b]] })
	for k, i := range order {
		place := k + 1
		if k > 0 && wins[i] == wins[order[k-1]] {
			place = r.Ranking[k-1].Rank
		}
		r.Ranking = append(r.Ranking, SchulzeRank{OptionID: c.Options[i], Rank: place, Wins: wins[i]})
	}
	if p.ballots() == 0 || len(unbeaten) == 0 {
		return r
	}
	for _, i := range unbeaten {
		r.Winners = append(r.Winners, c.Options[i])
	}
	r.Winner = c.Options[lot(c, "winner", unbeaten)]
	return r
}

// square slices a flat n×n matrix into rows for the result.
func square(flat []int, n int) [][]int {
	out := make([][]int, n)
	for i := range out {
		out[i] = flat[i*n : (i+1)*n : (i+1)*n]
	}
	return out
}
