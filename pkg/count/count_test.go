package count

import (
	"reflect"
	"strings"
	"testing"
)

// group is a number of identical ballots, as worked examples publish them.
type group struct {
	n      int
	ballot string // option ids, one letter each, most preferred first
}

func expand(groups []group) [][]string {
	var out [][]string
	for _, g := range groups {
		for range g.n {
			out = append(out, strings.Split(g.ballot, ""))
		}
	}
	return out
}

// The Tennessee capital example (Wikipedia, "Instant-runoff voting" and
// "Effects of different voting systems under similar circumstances"), per
// 100 voters: Memphis 42 % rank M>N>C>K, Nashville 26 % N>C>K>M,
// Chattanooga 15 % C>K>N>M, Knoxville 17 % K>C>N>M. Published outcomes:
// plurality elects Memphis; instant-runoff eliminates Chattanooga, then
// Nashville, and elects Knoxville 58–42; Nashville is the Condorcet winner,
// so Schulze elects it; approval of each voter's top two elects Nashville.
var tennessee = []group{{42, "MNCK"}, {26, "NCKM"}, {15, "CKNM"}, {17, "KCNM"}}

var tnContest = Contest{Options: []string{"M", "N", "C", "K"}, Seed: "tennessee"}

func votes(pairs ...any) []OptionVotes {
	var out []OptionVotes
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, OptionVotes{OptionID: pairs[i].(string), Votes: pairs[i+1].(int)})
	}
	return out
}

func TestPluralityAndApprovalTennessee(t *testing.T) {
	var firsts, topTwo [][]string
	for _, b := range expand(tennessee) {
		firsts = append(firsts, b[:1])
		topTwo = append(topTwo, b[:2])
	}
	tests := []struct {
		name    string
		ballots [][]string
		want    []OptionVotes
		winner  string
	}{
		{"plurality", firsts, votes("M", 42, "N", 26, "C", 15, "K", 17), "M"},
		{"approval of the top two", topTwo, votes("M", 42, "N", 68, "C", 58, "K", 32), "N"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := CountChoices(tnContest, tc.ballots)
			if r.Ballots != 100 || !reflect.DeepEqual(r.Options, tc.want) || r.Winner != tc.winner || r.Tied != nil {
				t.Fatalf("got %+v, want options %v winner %s", r, tc.want, tc.winner)
			}
		})
	}
}

func TestInstantRunoffTennessee(t *testing.T) {
	r := InstantRunoff(tnContest, expand(tennessee))
	want := []RunoffRound{
		{Round: 1, Counts: votes("M", 42, "N", 26, "C", 15, "K", 17), Eliminated: "C"},
		{Round: 2, Counts: votes("M", 42, "N", 26, "K", 32), Eliminated: "N"},
		{Round: 3, Counts: votes("M", 42, "K", 58)},
	}
	if r.Winner != "K" || r.Ballots != 100 || !reflect.DeepEqual(r.Rounds, want) {
		t.Fatalf("got %+v", r)
	}
}

func TestInstantRunoffLotAndExhausted(t *testing.T) {
	// Round 1: A 4, B 3, C 3 — B and C tie with no earlier round, so only
	// the lot settles it, and the seed fixes its draw.
	groups := []group{{4, "A"}, {3, "B"}, {2, "C"}, {1, "CB"}}
	c := Contest{Options: []string{"A", "B", "C"}, Seed: "p1"}
	r := InstantRunoff(c, expand(groups))
	if !reflect.DeepEqual(r, InstantRunoff(c, expand(groups))) {
		t.Fatal("the lot is not reproducible")
	}
	first := r.Rounds[0]
	if first.TieBreak != TieBreakLot || first.Eliminated != "C" {
		t.Fatalf("round 1: %+v (seed p1 draws C)", first)
	}
	// C's one transferable ballot goes to B and the two C-only ballots
	// exhaust: A 4, B 4. The new tie goes by countback (B had 3 < 4 in
	// round 1), and A is left alone with 4 of 4 continuing ballots.
	want := []RunoffRound{
		first,
		{Round: 2, Counts: votes("A", 4, "B", 4), Exhausted: 2, Eliminated: "B", TieBreak: TieBreakCountback},
		{Round: 3, Counts: votes("A", 4), Exhausted: 6},
	}
	if !reflect.DeepEqual(r.Rounds, want) || r.Winner != "A" {
		t.Fatalf("got %+v", r)
	}
	// Another seed may draw the other option; the draw is the seed's.
	other := InstantRunoff(Contest{Options: c.Options, Seed: "p2"}, expand(groups))
	if other.Rounds[0].Eliminated != "B" && other.Rounds[0].Eliminated != "C" {
		t.Fatalf("seed p2: %+v", other.Rounds[0])
	}
}

func TestInstantRunoffCountbackPicksEarlierLoser(t *testing.T) {
	// Round 1: A 5, B 4, C 3, D 1 (D → C). Round 2: A 5, B 4, C 4: B and C
	// tie; in round 1 C had 3 < 4, so C is eliminated by countback.
	groups := []group{{5, "A"}, {4, "BA"}, {3, "CB"}, {1, "DC"}}
	r := InstantRunoff(Contest{Options: []string{"A", "B", "C", "D"}, Seed: "x"}, expand(groups))
	if len(r.Rounds) < 2 || r.Rounds[1].Eliminated != "C" || r.Rounds[1].TieBreak != TieBreakCountback {
		t.Fatalf("got %+v", r.Rounds)
	}
	// C's four ballots go to B: B 8 of 13 wins.
	if r.Winner != "B" {
		t.Fatalf("winner %q", r.Winner)
	}
}

func TestInstantRunoffNoBallots(t *testing.T) {
	r := InstantRunoff(tnContest, nil)
	if r.Winner != "" || len(r.Rounds) != 1 {
		t.Fatalf("got %+v", r)
	}
}

// Wikipedia, "Schulze method", Example: 45 voters — 5 ACBED, 5 ADECB,
// 8 BEDAC, 3 CABED, 7 CAEBD, 2 CBADE, 7 DCEBA, 8 EBADC. The article gives
// the pairwise matrix d, the strongest paths p, and the order
// E > A > C > B > D with E the winner.
func TestSchulzeWikipedia45(t *testing.T) {
	groups := []group{{5, "ACBED"}, {5, "ADECB"}, {8, "BEDAC"}, {3, "CABED"}, {7, "CAEBD"}, {2, "CBADE"}, {7, "DCEBA"}, {8, "EBADC"}}
	r := CountSchulze(Contest{Options: []string{"A", "B", "C", "D", "E"}, Seed: "w"}, expand(groups))
	wantD := [][]int{
		{0, 20, 26, 30, 22},
		{25, 0, 16, 33, 18},
		{19, 29, 0, 17, 24},
		{15, 12, 28, 0, 14},
		{23, 27, 21, 31, 0},
	}
	wantP := [][]int{
		{0, 28, 28, 30, 24},
		{25, 0, 28, 33, 24},
		{25, 29, 0, 29, 24},
		{25, 28, 28, 0, 24},
		{25, 28, 28, 31, 0},
	}
	if !reflect.DeepEqual(r.D, wantD) {
		t.Errorf("d = %v, want %v", r.D, wantD)
	}
	if !reflect.DeepEqual(r.P, wantP) {
		t.Errorf("p = %v, want %v", r.P, wantP)
	}
	var order []string
	for k, rk := range r.Ranking {
		order = append(order, rk.OptionID)
		if rk.Rank != k+1 {
			t.Errorf("rank of %s = %d, want %d", rk.OptionID, rk.Rank, k+1)
		}
	}
	if strings.Join(order, "") != "EACBD" || r.Winner != "E" || !reflect.DeepEqual(r.Winners, []string{"E"}) {
		t.Fatalf("order %v winner %q winners %v", order, r.Winner, r.Winners)
	}
}

func TestSchulzeTennesseeElectsTheCondorcetWinner(t *testing.T) {
	r := CountSchulze(tnContest, expand(tennessee))
	if r.Winner != "N" {
		t.Fatalf("winner %q, ranking %+v", r.Winner, r.Ranking)
	}
}

func TestSchulzePartialBallotsAndTie(t *testing.T) {
	// One ballot A, one ballot B: each prefers its option to the other and
	// to C, so A and B tie unbeaten and the lot picks one of them.
	r := CountSchulze(Contest{Options: []string{"A", "B", "C"}, Seed: "s"}, [][]string{{"A"}, {"B"}})
	if !reflect.DeepEqual(r.Winners, []string{"A", "B"}) || (r.Winner != "A" && r.Winner != "B") {
		t.Fatalf("got %+v", r)
	}
	if r.D[0][2] != 1 || r.D[1][2] != 1 || r.D[0][1] != 1 || r.D[2][0] != 0 {
		t.Fatalf("d = %v", r.D)
	}
	if r.Ranking[2].OptionID != "C" || r.Ranking[0].Rank != 1 || r.Ranking[1].Rank != 1 {
		t.Fatalf("ranking %+v", r.Ranking)
	}
}

// The starvote package's published test election
// test_election_breakable_tie_in_automatic_runoff_round_using_max_score_count_round (3 ballots, max score 5)
// reports totals Brian 12 (mean 4), Chuck 12 (mean 4), Amy 3 (mean 1), and
// Chuck ahead on scores of 5 (2 against 1). It publishes the totals, not
// the ballots; the ballots below are one set that reproduces every figure
// it prints (including its runoff: one ballot each way, one indifferent).
func TestScoreStarvoteTie(t *testing.T) {
	ballots := []map[string]int{
		{"amy": 1, "brian": 5, "chuck": 5},
		{"amy": 1, "brian": 4, "chuck": 5},
		{"amy": 1, "brian": 3, "chuck": 2},
	}
	r := CountScores(Contest{Options: []string{"amy", "brian", "chuck"}, Seed: "s"}, ballots)
	want := []ScoreOption{
		{OptionID: "amy", Count: 3, Total: 3, Mean: 1, Distribution: [6]int{0, 3, 0, 0, 0, 0}},
		{OptionID: "brian", Count: 3, Total: 12, Mean: 4, Distribution: [6]int{0, 0, 0, 1, 1, 1}},
		{OptionID: "chuck", Count: 3, Total: 12, Mean: 4, Distribution: [6]int{0, 0, 1, 0, 0, 2}},
	}
	if !reflect.DeepEqual(r.Options, want) || r.Winner != "chuck" || r.Ballots != 3 {
		t.Fatalf("got %+v", r)
	}
}

func TestScoreUnscoredAndOutOfRange(t *testing.T) {
	ballots := []map[string]int{{"a": 5}, {"a": 1, "b": 4}, {"b": 9, "zz": 3}, {}}
	r := CountScores(Contest{Options: []string{"a", "b"}, Seed: "s"}, ballots)
	if r.Options[0].Count != 2 || r.Options[0].Mean != 3 || r.Options[1].Count != 1 || r.Options[1].Total != 4 || r.Winner != "a" || r.Ballots != 4 {
		t.Fatalf("got %+v", r)
	}
	if r := CountScores(Contest{Options: []string{"a"}}, nil); r.Winner != "" {
		t.Fatalf("winner without ballots: %+v", r)
	}
}

func TestCountDispatch(t *testing.T) {
	ballots := []Ballot{{OptionIDs: []string{"M", "N"}}, {OptionIDs: []string{"N"}}, {OptionIDs: []string{"N", "M"}}}
	for _, m := range Methods() {
		r := Count(m, tnContest, ballots)
		if r.Method != m || r.Ballots != 3 {
			t.Fatalf("%s: %+v", m, r)
		}
	}
	if r := Count("", tnContest, ballots); r.Method != Plurality || r.Choices == nil {
		t.Fatalf("empty method: %+v", r)
	}
	if r := Count(Ranked, tnContest, ballots); r.Winner != "N" || r.InstantRunoff == nil {
		t.Fatalf("ranked: %+v", r)
	}
}

func TestPackSkipsUnknownAndRepeats(t *testing.T) {
	p := pack([]string{"a", "b"}, [][]string{{"a", "x", "a", "b"}, {}, {"b", "b"}})
	if !reflect.DeepEqual(p.prefs, []int{0, 1, 1}) || !reflect.DeepEqual(p.start, []int{0, 2, 2, 3}) {
		t.Fatalf("got %+v", p)
	}
}
