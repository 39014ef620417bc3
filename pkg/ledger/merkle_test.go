package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	tdproof "github.com/transparency-dev/merkle/proof"
	tdrfc "github.com/transparency-dev/merkle/rfc6962"
)

// naiveRoot is the Merkle Tree Hash written straight from the RFC's definition,
// with byte slices and its own split search, independent of merkle.go's helpers.
func naiveRoot(data [][]byte) []byte {
	switch len(data) {
	case 0:
		h := sha256.Sum256([]byte{})
		return h[:]
	case 1:
		h := sha256.Sum256(append([]byte{0}, data[0]...))
		return h[:]
	}
	k := 1
	for k*2 < len(data) {
		k *= 2
	}
	l, r := naiveRoot(data[:k]), naiveRoot(data[k:])
	buf := append([]byte{1}, l...)
	h := sha256.Sum256(append(buf, r...))
	return h[:]
}

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("commitment-%d", i))
	}
	return out
}

func TestEmptyTreeRootIsSHA256OfEmptyString(t *testing.T) {
	const want = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	got := New(nil).Root()
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("empty root = %x, want %s", got, want)
	}
}

func TestLeafAndNodeHashPrefixes(t *testing.T) {
	// RFC 6962 §2.1: the one-leaf tree over the empty string is SHA-256(0x00).
	const emptyLeaf = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	if got := LeafHash(nil); hex.EncodeToString(got[:]) != emptyLeaf {
		t.Fatalf("LeafHash(empty) = %x, want %s", got, emptyLeaf)
	}
	var l, r Hash
	want := sha256.Sum256(append([]byte{1}, make([]byte, 64)...))
	if got := NodeHash(l, r); got != want {
		t.Fatalf("NodeHash(0,0) = %x, want %x", got, want)
	}
	if LeafHash(make([]byte, 64)) == NodeHash(l, r) {
		t.Fatal("leaf and node hashes of the same bytes must differ")
	}
}

func TestSplitPoint(t *testing.T) {
	for _, tc := range []struct{ n, want uint64 }{
		{2, 1}, {3, 2}, {4, 2}, {5, 4}, {7, 4}, {8, 4}, {9, 8}, {1 << 40, 1 << 39}, {1<<40 + 1, 1 << 40},
	} {
		if got := splitPoint(tc.n); got != tc.want {
			t.Errorf("splitPoint(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestRootMatchesNaiveDefinition(t *testing.T) {
	for n := 0; n <= 70; n++ {
		d := leaves(n)
		got := New(d).Root()
		if want := naiveRoot(d); hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
			t.Fatalf("n=%d: root %x, want %x", n, got, want)
		}
	}
}

func TestSmallTreeShapes(t *testing.T) {
	// Hand-built shapes for n = 3 and n = 7, spelling out where the splits fall.
	d := leaves(7)
	h := make([]Hash, 7)
	for i := range d {
		h[i] = LeafHash(d[i])
	}
	three := NodeHash(NodeHash(h[0], h[1]), h[2])
	if got := New(d[:3]).Root(); got != three {
		t.Fatalf("n=3 root %x, want %x", got, three)
	}
	seven := NodeHash(
		NodeHash(NodeHash(h[0], h[1]), NodeHash(h[2], h[3])),
		NodeHash(NodeHash(h[4], h[5]), h[6]),
	)
	if got := New(d).Root(); got != seven {
		t.Fatalf("n=7 root %x, want %x", got, seven)
	}
	// The audit path of leaf 6 in a 7-leaf tree is two hashes long: the right edge
	// skips a level, which is the case RFC 9162's verifier handles with its inner shift.
	p, err := New(d).InclusionProof(6)
	if err != nil {
		t.Fatal(err)
	}
	want := []Hash{NodeHash(h[4], h[5]), NodeHash(NodeHash(h[0], h[1]), NodeHash(h[2], h[3]))}
	if len(p) != len(want) || p[0] != want[0] || p[1] != want[1] {
		t.Fatalf("proof for leaf 6 of 7 = %x, want %x", p, want)
	}
}

func TestEveryProofVerifies(t *testing.T) {
	for n := 1; n <= 40; n++ {
		d := leaves(n)
		tree := New(d)
		root := tree.Root()
		for i := 0; i < n; i++ {
			p, err := tree.InclusionProof(uint64(i))
			if err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if err := VerifyInclusion(uint64(i), uint64(n), d[i], p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			// An independent verifier agrees.
			if err := tdproof.VerifyInclusion(tdrfc.DefaultHasher, uint64(i), uint64(n), tdrfc.DefaultHasher.HashLeaf(d[i]), toSlices(p), root[:]); err != nil {
				t.Fatalf("transparency-dev rejects n=%d i=%d: %v", n, i, err)
			}
		}
	}
}

func TestTransparencyDevProofsVerifyHere(t *testing.T) {
	// The other direction: a proof made by transparency-dev's builder passes our verifier.
	for n := uint64(1); n <= 33; n++ {
		d := leaves(int(n))
		lh := make([][]byte, n)
		for i := range d {
			lh[i] = tdrfc.DefaultHasher.HashLeaf(d[i])
		}
		for i := uint64(0); i < n; i++ {
			nodes, err := tdproof.Inclusion(i, n)
			if err != nil {
				t.Fatal(err)
			}
			ours, _ := New(d).InclusionProof(i)
			theirs, err := nodes.Rehash(hashesAt(nodes.IDs, d), tdrfc.DefaultHasher.HashChildren)
			if err != nil {
				t.Fatal(err)
			}
			if len(theirs) != len(ours) {
				t.Fatalf("n=%d i=%d: proof length %d, theirs %d", n, i, len(ours), len(theirs))
			}
			for j := range ours {
				if string(ours[j][:]) != string(theirs[j]) {
					t.Fatalf("n=%d i=%d: proof[%d] differs", n, i, j)
				}
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	d := leaves(11)
	tree := New(d)
	root := tree.Root()
	p, _ := tree.InclusionProof(5)
	cases := []struct {
		name  string
		index uint64
		size  uint64
		data  []byte
		proof []Hash
		root  Hash
		want  error
	}{
		{"wrong data", 5, 11, []byte("x"), p, root, ErrProofMismatch},
		{"wrong index", 4, 11, d[5], p, root, ErrProofMismatch},
		{"wrong size", 5, 6, d[5], p, root, ErrProofLength},
		{"sibling swapped", 5, 11, d[5], swap(p), root, ErrProofMismatch},
		{"index past size", 11, 11, d[5], p, root, ErrIndexOutOfRange},
		{"short proof", 5, 11, d[5], p[:len(p)-1], root, ErrProofLength},
		{"long proof", 5, 11, d[5], append(append([]Hash(nil), p...), root), root, ErrProofLength},
		{"wrong root", 5, 11, d[5], p, LeafHash(nil), ErrProofMismatch},
		{"empty tree", 0, 0, nil, nil, EmptyRoot(), ErrIndexOutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyInclusion(tc.index, tc.size, tc.data, tc.proof, tc.root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := tree.InclusionProof(11); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatalf("InclusionProof(11) err = %v", err)
	}
}

func TestSingleLeafTree(t *testing.T) {
	d := [][]byte{[]byte("only")}
	tree := New(d)
	if tree.Root() != LeafHash(d[0]) {
		t.Fatal("one-leaf root must be the leaf hash")
	}
	p, err := tree.InclusionProof(0)
	if err != nil || len(p) != 0 {
		t.Fatalf("proof = %v, %v; want empty", p, err)
	}
	if err := VerifyInclusion(0, 1, d[0], nil, tree.Root()); err != nil {
		t.Fatal(err)
	}
}

// FuzzInclusion builds a tree from fuzzed leaves, checks every leaf's proof against
// the root, and checks that flipping any one bit of the leaf, of a proof hash or of
// the root makes verification fail.
func FuzzInclusion(f *testing.F) {
	f.Add([]byte("a,b,c"), uint16(0), uint8(0))
	f.Add([]byte("one"), uint16(0), uint8(3))
	f.Add([]byte("1,2,3,4,5,6,7,8,9,10,11,12,13"), uint16(77), uint8(200))
	f.Fuzz(func(t *testing.T, raw []byte, pick uint16, bit uint8) {
		d := splitComma(raw)
		tree := New(d)
		root := tree.Root()
		if got := naiveRoot(d); string(got) != string(root[:]) {
			t.Fatalf("root %x differs from naive %x", root, got)
		}
		n := tree.Size()
		for i := uint64(0); i < n; i++ {
			p, err := tree.InclusionProof(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(i, n, d[i], p, root); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, n, err)
			}
		}
		i := uint64(pick) % n
		p, _ := tree.InclusionProof(i)
		// Flip a bit in the leaf data (a leaf with empty data gets a byte added instead).
		leaf := append([]byte(nil), d[i]...)
		if len(leaf) == 0 {
			leaf = []byte{0}
		} else {
			leaf[int(bit/8)%len(leaf)] ^= 1 << (bit % 8)
		}
		if VerifyInclusion(i, n, leaf, p, root) == nil {
			t.Fatalf("changed leaf %d still verifies", i)
		}
		badRoot := root
		badRoot[int(bit)%HashSize] ^= 1 << (bit % 8)
		if VerifyInclusion(i, n, d[i], p, badRoot) == nil {
			t.Fatal("changed root still verifies")
		}
		if len(p) > 0 {
			bad := append([]Hash(nil), p...)
			bad[int(bit)%len(bad)][int(bit)%HashSize] ^= 1 << (bit % 8)
			if VerifyInclusion(i, n, d[i], bad, root) == nil {
				t.Fatal("changed proof hash still verifies")
			}
		}
	})
}

// splitComma cuts raw at commas into at least one leaf.
func splitComma(raw []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, b := range raw {
		if b == ',' {
			out = append(out, raw[start:i])
			start = i + 1
		}
	}
	return append(out, raw[start:])
}

func toSlices(p []Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out
}

// hashesAt computes, with the naive definition, the subtree hash for each node id
// transparency-dev asks for (level, index: the 2^level leaves from index·2^level).
func hashesAt(ids []compact.NodeID, d [][]byte) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		lo := id.Index << id.Level
		hi := min(lo+(1<<id.Level), uint64(len(d)))
		out[i] = naiveRoot(d[lo:hi])
	}
	return out
}

func swap(p []Hash) []Hash {
	out := append([]Hash(nil), p...)
	out[0], out[1] = out[1], out[0]
	return out
}
