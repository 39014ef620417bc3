package count

// ScoreTieRule is the score count's rule for a tie on the total, in words
// for the result and the docs.
const ScoreTieRule = "highest total; tie → most scores of 5; then " + LotRule + ", stage \"winner\""

// ScoreResult is a score count.
type ScoreResult struct {
	Ballots int           `json:"ballots"`
	Options []ScoreOption `json:"options"`
	Winner  string        `json:"winner,omitempty"`
	TieRule string        `json:"tie_rule"`
}

// ScoreOption is one option's scores. Count is how many ballots scored it,
// Mean the mean of those scores, Distribution[s] how many gave score s.
type ScoreOption struct {
	OptionID     string            `json:"option_id"`
	Count        int               `json:"count"`
	Total        int               `json:"total"`
	Mean         float64           `json:"mean"`
	Distribution [MaxScore + 1]int `json:"distribution"`
}

// CountScores counts score ballots (option id → 0..MaxScore). An option a
// ballot does not score adds nothing to its total and is left out of its
// mean and count. The option with the highest total wins (so leaving an
// option unscored weighs like a 0 for the winner, while the mean shows how
// those who scored it rated it); ties go by ScoreTieRule. Scores out of
// range and unknown options are skipped.
func CountScores(c Contest, ballots []map[string]int) ScoreResult {
	index := make(map[string]int, len(c.Options))
	r := ScoreResult{Ballots: len(ballots), Options: make([]ScoreOption, len(c.Options)), TieRule: ScoreTieRule}
	for i, o := range c.Options {
		index[o] = i
		r.Options[i].OptionID = o
	}
	for _, b := range ballots {
		for o, s := range b {
			i, ok := index[o]
			if !ok || s < 0 || s > MaxScore {
				continue
			}
			so := &r.Options[i]
			so.Count++
			so.Total += s
			so.Distribution[s]++
		}
	}
	var tied []int
	for i := range r.Options {
		so := &r.Options[i]
		if so.Count > 0 {
			so.Mean = float64(so.Total) / float64(so.Count)
		} else {
			continue
		}
		switch {
		case len(tied) == 0 || beatsOnScore(so, &r.Options[tied[0]]):
			tied = append(tied[:0], i)
		case !beatsOnScore(&r.Options[tied[0]], so):
			tied = append(tied, i)
		}
	}
	if len(tied) > 0 {
		r.Winner = c.Options[lot(c, "winner", tied)]
	}
	return r
}

// beatsOnScore: a higher total, or an equal total with more 5s.
func beatsOnScore(a, b *ScoreOption) bool {
	if a.Total != b.Total {
		return a.Total > b.Total
	}
	return a.Distribution[MaxScore] > b.Distribution[MaxScore]
}
