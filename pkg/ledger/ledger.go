package ledger

import (
	"bytes"
	"math/bits"
	"slices"
	"sort"
)

// Entry is one current ballot of a poll as its ledger holds it.
type Entry struct {
	VoteID     [16]byte
	Commitment Hash
}

// Leaf is the entry's leaf data (BallotLeaf).
func (e Entry) Leaf() []byte { return BallotLeaf(e.VoteID, e.Commitment) }

// compareEntries orders entries as SortLeaves orders their leaves: by the
// leaf bytes, vote id first.
func compareEntries(a, b Entry) int {
	if c := bytes.Compare(a.VoteID[:], b.VoteID[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.Commitment[:], b.Commitment[:])
}

// Ledger is a poll's ledger held for answering proofs: its entries in the
// canonical order and the hash of every complete, aligned subtree, so a
// proof costs O(log² n) hashes instead of the O(n) of Tree. It keeps 16
// bytes of vote id and about 64 bytes of hashes per leaf (a million ballots
// take about 80 MB), and never changes once built.
type Ledger struct {
	ids [][16]byte
	// levels[k][i] is the root of the complete subtree over leaves
	// [i·2^k, (i+1)·2^k); levels[0] are the leaf hashes.
	levels [][]Hash
}

// Build sorts a copy of entries into the canonical order and builds the
// ledger over them. Its root equals New over the same leaves sorted with
// SortLeaves.
func Build(entries []Entry) *Ledger {
	es := slices.Clone(entries)
	slices.SortFunc(es, compareEntries)
	l := &Ledger{ids: make([][16]byte, len(es))}
	leaves := make([]Hash, len(es))
	for i, e := range es {
		l.ids[i] = e.VoteID
		leaves[i] = LeafHash(e.Leaf())
	}
	l.levels = append(l.levels, leaves)
	for cur := leaves; len(cur) > 1; {
		next := make([]Hash, len(cur)/2)
		for i := range next {
			next[i] = NodeHash(cur[2*i], cur[2*i+1])
		}
		l.levels = append(l.levels, next)
		cur = next
	}
	return l
}

// Size is the number of leaves.
func (l *Ledger) Size() uint64 { return uint64(len(l.ids)) }

// Root is the Merkle Tree Hash of the ledger (EmptyRoot when empty).
func (l *Ledger) Root() Hash {
	if len(l.ids) == 0 {
		return EmptyRoot()
	}
	return l.subtree(0, l.Size())
}

// subtree is the root over leaves [lo, lo+n), n ≥ 1. Every subtree the RFC
// 6962 recursion visits starts at a multiple of the largest power of two
// not above its size, so a power-of-two-sized one is a stored node and the
// others split into one stored node and a smaller right edge.
func (l *Ledger) subtree(lo, n uint64) Hash {
	if n&(n-1) == 0 {
		k := bits.TrailingZeros64(n)
		return l.levels[k][lo>>k]
	}
	k := splitPoint(n)
	return NodeHash(l.subtree(lo, k), l.subtree(lo+k, n-k))
}

// Proof is the inclusion proof of one leaf: its index, the tree's size and
// the audit path, nearest sibling first (RFC 9162 §2.1.3.1).
type Proof struct {
	Index uint64
	Size  uint64
	Path  []Hash
}

// Find returns the index of the vote id's leaf; ok is false when the
// ledger holds no ballot with that vote id.
func (l *Ledger) Find(voteID [16]byte) (index uint64, ok bool) {
	i := sort.Search(len(l.ids), func(i int) bool { return bytes.Compare(l.ids[i][:], voteID[:]) >= 0 })
	if i < len(l.ids) && l.ids[i] == voteID {
		return uint64(i), true
	}
	return 0, false
}

// Prove returns the inclusion proof of the vote id's leaf; ok is false
// when the ledger does not hold it.
func (l *Ledger) Prove(voteID [16]byte) (Proof, bool) {
	i, ok := l.Find(voteID)
	if !ok {
		return Proof{}, false
	}
	return Proof{Index: i, Size: l.Size(), Path: l.path(i)}, true
}

// path is the audit path of leaf index, built top-down as Tree's is.
func (l *Ledger) path(index uint64) []Hash {
	var rev []Hash
	lo, n := uint64(0), l.Size()
	for n > 1 {
		k := splitPoint(n)
		if index-lo < k {
			rev = append(rev, l.subtree(lo+k, n-k))
			n = k
		} else {
			rev = append(rev, l.subtree(lo, k))
			lo, n = lo+k, n-k
		}
	}
	slices.Reverse(rev)
	return rev
}

// RootOf sorts entries into the canonical order, in place, and returns the
// root and size of the tree over them: what a freeze needs, without the
// interior nodes Build keeps for proofs (32 bytes a leaf beside the
// entries, not about 64 more).
func RootOf(entries []Entry) (Hash, uint64) {
	slices.SortFunc(entries, compareEntries)
	if len(entries) == 0 {
		return EmptyRoot(), 0
	}
	leaves := make([]Hash, len(entries))
	for i, e := range entries {
		leaves[i] = LeafHash(e.Leaf())
	}
	return subtreeRoot(leaves), uint64(len(leaves))
}
