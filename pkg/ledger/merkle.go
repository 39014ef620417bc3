// Package ledger builds the per-poll Merkle tree over ballot commitments, in the
// RFC 6962 / RFC 9162 §2.1 shape, so an inclusion proof can be checked by anyone
// with a generic transparency-log verifier and no Tally code.
package ledger

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Hash is one node of the tree.
type Hash = [HashSize]byte

// The domain-separation prefixes of RFC 6962 §2.1: a leaf hash can never equal an
// interior node's hash, which is what stops a second-preimage forgery that passes an
// interior node off as a leaf.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// Errors a proof check can return. ErrProofMismatch is the only one that says the
// data is wrong; the others say the proof is malformed for the claimed tree.
var (
	ErrIndexOutOfRange = errors.New("ledger: leaf index out of range")
	ErrProofLength     = errors.New("ledger: proof has the wrong number of hashes")
	ErrProofMismatch   = errors.New("ledger: proof does not lead to the root")
)

// EmptyRoot is the root of a tree with no leaves: SHA-256 of the empty string.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// LeafHash is H(0x00 ‖ d).
func LeafHash(d []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(d)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is H(0x01 ‖ l ‖ r).
func NodeHash(l, r Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = nodePrefix
	copy(buf[1:], l[:])
	copy(buf[1+HashSize:], r[:])
	return sha256.Sum256(buf[:])
}

// splitPoint is the largest power of two strictly less than n (n ≥ 2): the size of
// the left subtree.
func splitPoint(n uint64) uint64 {
	return uint64(1) << (bits.Len64(n-1) - 1)
}

// Tree is an immutable Merkle tree over a fixed list of leaves. It keeps the leaf
// hashes only; interior nodes are recomputed on demand, which costs O(n) per root and
// O(n) per proof — fine for one poll's ballots built once at close.
type Tree struct {
	leaves []Hash
}

// New builds a tree over the given leaf data, in order. The data slices are hashed
// immediately and not retained.
func New(data [][]byte) *Tree {
	leaves := make([]Hash, len(data))
	for i, d := range data {
		leaves[i] = LeafHash(d)
	}
	return &Tree{leaves: leaves}
}

// NewFromLeafHashes builds a tree over precomputed leaf hashes (LeafHash of each
// datum), for callers that stream leaves rather than hold their data.
func NewFromLeafHashes(leaves []Hash) *Tree {
	return &Tree{leaves: append([]Hash(nil), leaves...)}
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return uint64(len(t.leaves)) }

// Root is the Merkle Tree Hash of all leaves (RFC 9162 §2.1.1).
func (t *Tree) Root() Hash {
	if len(t.leaves) == 0 {
		return EmptyRoot()
	}
	return subtreeRoot(t.leaves)
}

// subtreeRoot hashes a non-empty run of leaf hashes.
func subtreeRoot(leaves []Hash) Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := splitPoint(uint64(len(leaves)))
	return NodeHash(subtreeRoot(leaves[:k]), subtreeRoot(leaves[k:]))
}

// InclusionProof returns the audit path for leaf index (RFC 9162 §2.1.3.1): the
// sibling hashes from the leaf up to the root, nearest sibling first.
func (t *Tree) InclusionProof(index uint64) ([]Hash, error) {
	if index >= t.Size() {
		return nil, fmt.Errorf("%w: index %d, size %d", ErrIndexOutOfRange, index, t.Size())
	}
	return path(index, t.leaves), nil
}

// path builds the audit path top-down and reverses it, so the result lists the
// sibling nearest the leaf first, as the RFC's verifier consumes it.
func path(index uint64, leaves []Hash) []Hash {
	var rev []Hash
	for len(leaves) > 1 {
		k := splitPoint(uint64(len(leaves)))
		if index < k {
			rev = append(rev, subtreeRoot(leaves[k:]))
			leaves = leaves[:k]
		} else {
			rev = append(rev, subtreeRoot(leaves[:k]))
			leaves = leaves[k:]
			index -= k
		}
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

// RootFromInclusionProof recomputes the root from a leaf hash, its index, the tree
// size and the audit path, following the verification algorithm of RFC 9162
// §2.1.3.2. It returns an error if the path has the wrong length for (index, size).
// A path does not bind the size on its own (the check for leaf 5 runs the same steps
// in any tree of 9 to 16 leaves); the size must come from the signed tree head next
// to the root.
func RootFromInclusionProof(index, size uint64, leaf Hash, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, fmt.Errorf("%w: index %d, size %d", ErrIndexOutOfRange, index, size)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			// More hashes than the tree has levels on this path.
			return Hash{}, ErrProofLength
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			// Climb past the levels where this node is a right-edge node with no
			// sibling: those levels add no hash to the path.
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, ErrProofLength
	}
	return r, nil
}

// VerifyInclusion checks that data is the leaf at index of the tree of the given
// size whose root is root.
func VerifyInclusion(index, size uint64, data []byte, proof []Hash, root Hash) error {
	got, err := RootFromInclusionProof(index, size, LeafHash(data), proof)
	if err != nil {
		return err
	}
	if got != root {
		return ErrProofMismatch
	}
	return nil
}
