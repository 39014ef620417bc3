package cassandra

import (
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/vote"
)

// TestOptionalColumnsAreWrittenOnlyWhenSet: each ballot is written by the
// statement naming exactly the optional columns it fills, so an unset one
// is left unset rather than written as a null (a tombstone).
func TestOptionalColumnsAreWrittenOnlyWhenSet(t *testing.T) {
	c := make([]byte, 32)
	for _, tc := range []struct {
		name string
		b    vote.Ballot
		want []string
	}{
		{"plain", vote.Ballot{}, nil},
		{"flagged", vote.Ballot{Flags: []string{"ip_burst"}}, []string{"flags"}},
		{"scored", vote.Ballot{Scores: []int{1}}, []string{"scores"}},
		{"committed", vote.Ballot{Commitment: c}, []string{"commitment"}},
		{"all", vote.Ballot{Flags: []string{"x"}, Scores: []int{1}, Commitment: c}, []string{"flags", "scores", "commitment"}},
		{"empty commitment", vote.Ballot{Commitment: []byte{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for what, st := range map[string]statement{"votes": voteInsert(&tc.b),
				"votes_by_poll": indexInsert(tc.b.Flags, tc.b.Scores, tc.b.Commitment)} {
				for _, col := range []string{"flags", "scores", "commitment"} {
					want := false
					for _, w := range tc.want {
						want = want || w == col
					}
					if got := strings.Contains(st.cql, col); got != want {
						t.Errorf("%s insert %q: has %s = %v, want %v", what, st.cql, col, got, want)
					}
				}
			}
			if !strings.Contains(voteInsert(&tc.b).cql, "IF NOT EXISTS") {
				t.Error("the ballot insert is not conditional")
			}
		})
	}
}
