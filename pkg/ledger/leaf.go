package ledger

import (
	"bytes"
	"slices"
)

// BallotLeafSize is the size of one ballot's leaf data.
const BallotLeafSize = 16 + HashSize

// BallotLeaf is the leaf data for one current ballot of a poll: its vote id
// (16 bytes) then its commitment (32 bytes). The vote id is in the leaf so a
// receipt finds its own leaf, and two voters with equal commitments (never,
// with random salts, but the format should not depend on it) stay distinct.
func BallotLeaf(voteID [16]byte, commitment [HashSize]byte) []byte {
	b := make([]byte, 0, BallotLeafSize)
	b = append(b, voteID[:]...)
	return append(b, commitment[:]...)
}

// SortLeaves puts ballot leaves in the ledger's canonical order: ascending
// bytes, that is by vote id. The order is fixed by the data alone, so the
// root does not depend on the order a scan happened to read the rows in,
// and anyone re-building it from an export gets the same tree.
func SortLeaves(leaves [][]byte) {
	slices.SortFunc(leaves, bytes.Compare)
}
