package ledger

import (
	"crypto/rand"
	"testing"
)

func randomEntries(n int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		_, _ = rand.Read(es[i].VoteID[:])
		_, _ = rand.Read(es[i].Commitment[:])
	}
	return es
}

// TestLedgerMatchesTree checks the cached ledger against the plain tree:
// same root as New over SortLeaves' order, same proof for every leaf, and
// each proof verifies.
func TestLedgerMatchesTree(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 129} {
		es := randomEntries(n)
		leaves := make([][]byte, n)
		for i, e := range es {
			leaves[i] = e.Leaf()
		}
		SortLeaves(leaves)
		tree := New(leaves)
		l := Build(es)
		root, size := RootOf(append([]Entry(nil), es...))
		if l.Size() != tree.Size() || l.Root() != tree.Root() || root != tree.Root() || size != tree.Size() {
			t.Fatalf("n=%d: ledger (%d, %x) != tree (%d, %x)", n, l.Size(), l.Root(), tree.Size(), tree.Root())
		}
		for _, e := range es {
			p, ok := l.Prove(e.VoteID)
			if !ok {
				t.Fatalf("n=%d: vote id not found", n)
			}
			want, _ := tree.InclusionProof(p.Index)
			if len(want) != len(p.Path) {
				t.Fatalf("n=%d index %d: path length %d, want %d", n, p.Index, len(p.Path), len(want))
			}
			for i := range want {
				if want[i] != p.Path[i] {
					t.Fatalf("n=%d index %d: path[%d] differs", n, p.Index, i)
				}
			}
			if err := VerifyInclusion(p.Index, p.Size, e.Leaf(), p.Path, l.Root()); err != nil {
				t.Fatalf("n=%d index %d: %v", n, p.Index, err)
			}
		}
	}
}

func TestLedgerFindUnknown(t *testing.T) {
	l := Build(randomEntries(10))
	var other [16]byte
	_, _ = rand.Read(other[:])
	if _, ok := l.Prove(other); ok {
		t.Fatal("an unknown vote id was found")
	}
	if _, ok := Build(nil).Find(other); ok {
		t.Fatal("an empty ledger found a vote id")
	}
}

func TestBuildLeavesInputUnsorted(t *testing.T) {
	es := randomEntries(5)
	first := es[0]
	_ = Build(es)
	if es[0] != first {
		t.Fatal("Build reordered its argument")
	}
}

func BenchmarkBuild1M(b *testing.B) {
	es := randomEntries(1_000_000)
	b.ResetTimer()
	for range b.N {
		_ = Build(es).Root()
	}
}
