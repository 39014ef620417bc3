package cassandra

import (
	"testing"

	"github.com/tally-vote/tally/pkg/id"
)

// TestLedgerRowAgrees: an index row agrees with its vote row when both name
// the same vote id, version and revoked state and, unless revoked, the same
// commitment; null version and revoked read as 0 and false.
func TestLedgerRowAgrees(t *testing.T) {
	vid := id.New()
	one, two, yes := 1, 2, true
	c1, c2 := make([]byte, 32), make([]byte, 32)
	c2[0] = 1
	base := ledgerRow{VoteID: vid, Commitment: c1}
	cases := []struct {
		name     string
		idx, row ledgerRow
		want     bool
	}{
		{"first cast, nulls", base, base, true},
		{"null version reads 0", ledgerRow{VoteID: vid, Commitment: c1, Version: new(int)}, base, true},
		{"other vote id", base, ledgerRow{VoteID: id.New(), Commitment: c1}, false},
		{"entry behind the row", ledgerRow{VoteID: vid, Commitment: c1, Version: &one}, ledgerRow{VoteID: vid, Commitment: c2, Version: &two}, false},
		{"changed, same version, other commitment", ledgerRow{VoteID: vid, Commitment: c1, Version: &one}, ledgerRow{VoteID: vid, Commitment: c2, Version: &one}, false},
		{"changed, agrees", ledgerRow{VoteID: vid, Commitment: c2, Version: &one}, ledgerRow{VoteID: vid, Commitment: c2, Version: &one}, true},
		{"revoked in the row only", base, ledgerRow{VoteID: vid, Version: &one, Revoked: &yes}, false},
		{"revoked, commitments ignored", ledgerRow{VoteID: vid, Commitment: c1, Version: &one, Revoked: &yes}, ledgerRow{VoteID: vid, Version: &one, Revoked: &yes}, true},
	}
	for _, c := range cases {
		row := c.row
		if got := c.idx.agrees(&row); got != c.want {
			t.Errorf("%s: agrees = %v, want %v", c.name, got, c.want)
		}
	}
	if base.agrees(nil) {
		t.Error("agrees with a missing vote row")
	}
}
