package count

// ChoiceResult is a plurality or approval count: ballots per option.
type ChoiceResult struct {
	Ballots int           `json:"ballots"`
	Options []OptionVotes `json:"options"`
	Winner  string        `json:"winner,omitempty"`
	// Tied lists the options that shared the most votes, when more than
	// one did; the winner among them was drawn by lot.
	Tied    []string `json:"tied,omitempty"`
	TieRule string   `json:"tie_rule"`
}

// CountChoices counts plurality and approval ballots: each ballot gives
// each option it lists one vote. The option with the most votes wins; a tie
// is settled by lot.
func CountChoices(c Contest, ballots [][]string) ChoiceResult {
	p := pack(c.Options, ballots)
	votes := make([]int, len(c.Options))
	for _, o := range p.prefs {
		votes[o]++
	}
	r := ChoiceResult{Ballots: p.ballots(), Options: make([]OptionVotes, len(c.Options)), TieRule: LotRule}
	top := 0
	for i, o := range c.Options {
		r.Options[i] = OptionVotes{OptionID: o, Votes: votes[i]}
		top = max(top, votes[i])
	}
	if top == 0 {
		return r
	}
	var tied []int
	for i, v := range votes {
		if v == top {
			tied = append(tied, i)
		}
	}
	r.Winner = c.Options[lot(c, "winner", tied)]
	if len(tied) > 1 {
		for _, i := range tied {
			r.Tied = append(r.Tied, c.Options[i])
		}
	}
	return r
}
