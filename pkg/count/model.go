// Package count turns a poll's ballots into its result under the poll's
// counting method. It is pure: no I/O, no clock, no randomness beyond a lot
// seeded from the poll, so the same ballots always give the same result.
package count

// Method is how a poll's ballots are counted.
type Method string

// The counting methods.
const (
	// Plurality: one option per ballot; most ballots wins.
	Plurality Method = "plurality"
	// Approval: any number of options per ballot (within the poll's
	// limits); most approvals wins.
	Approval Method = "approval"
	// Ranked: options in preference order, counted by instant-runoff.
	Ranked Method = "ranked"
	// Schulze: the same ranked ballots, counted by the Schulze method.
	Schulze Method = "schulze"
	// Score: each listed option scored 0–MaxScore.
	Score Method = "score"
)

// MaxScore is the highest score a score ballot may give an option.
const MaxScore = 5

// Methods lists every method, for validation messages and docs.
func Methods() []Method { return []Method{Plurality, Approval, Ranked, Schulze, Score} }

// Valid reports whether m is one of Methods.
func (m Method) Valid() bool {
	switch m {
	case Plurality, Approval, Ranked, Schulze, Score:
		return true
	}
	return false
}

// Ordered reports whether the order of a ballot's options is a preference
// order, so a ballot's options must be distinct and their order kept.
func (m Method) Ordered() bool { return m == Ranked || m == Schulze }

// Contest is what every counter needs besides the ballots: the options in
// display order (ties in listings follow it) and the seed of the lot that
// settles a tie no rule of the method settles, normally the poll's id.
type Contest struct {
	Options []string
	Seed    string
}

// Ballot is one voter's ballot: option ids (a preference order for ranked
// methods) or, for score polls, a score per option.
type Ballot struct {
	OptionIDs []string
	Scores    map[string]int
}

// OptionVotes is an option's count in a listing.
type OptionVotes struct {
	OptionID string `json:"option_id"`
	Votes    int    `json:"votes"`
}

// Result is one poll's count under its method; exactly one of the
// method-specific parts is set.
type Result struct {
	Method        Method         `json:"method"`
	Ballots       int            `json:"ballots"`
	Winner        string         `json:"winner,omitempty"`
	Choices       *ChoiceResult  `json:"choices,omitempty"`
	InstantRunoff *RunoffResult  `json:"instant_runoff,omitempty"`
	Schulze       *SchulzeResult `json:"schulze,omitempty"`
	Score         *ScoreResult   `json:"score,omitempty"`
}

// Count counts ballots under m. An unknown method counts as plurality,
// the default of a poll that predates methods.
func Count(m Method, c Contest, ballots []Ballot) Result {
	switch m {
	case Ranked, Schulze:
		lists := make([][]string, len(ballots))
		for i, b := range ballots {
			lists[i] = b.OptionIDs
		}
		if m == Ranked {
			r := InstantRunoff(c, lists)
			return Result{Method: m, Ballots: r.Ballots, Winner: r.Winner, InstantRunoff: &r}
		}
		r := CountSchulze(c, lists)
		return Result{Method: m, Ballots: r.Ballots, Winner: r.Winner, Schulze: &r}
	case Score:
		scores := make([]map[string]int, len(ballots))
		for i, b := range ballots {
			scores[i] = b.Scores
		}
		r := CountScores(c, scores)
		return Result{Method: m, Ballots: r.Ballots, Winner: r.Winner, Score: &r}
	}
	if !m.Valid() {
		m = Plurality
	}
	lists := make([][]string, len(ballots))
	for i, b := range ballots {
		lists[i] = b.OptionIDs
	}
	r := CountChoices(c, lists)
	return Result{Method: m, Ballots: r.Ballots, Winner: r.Winner, Choices: &r}
}
