package ledger

import (
	"bytes"
	"testing"
)

func TestBallotLeafAndOrder(t *testing.T) {
	var v1, v2 [16]byte
	v1[0], v2[0] = 2, 1
	var c [HashSize]byte
	c[31] = 7
	l1, l2 := BallotLeaf(v1, c), BallotLeaf(v2, c)
	if len(l1) != BallotLeafSize || !bytes.Equal(l1[:16], v1[:]) || !bytes.Equal(l1[16:], c[:]) {
		t.Fatalf("leaf layout %x", l1)
	}
	a := [][]byte{l1, l2}
	b := [][]byte{l2, l1}
	SortLeaves(a)
	SortLeaves(b)
	if New(a).Root() != New(b).Root() || !bytes.Equal(a[0], l2) {
		t.Fatal("the root depends on the order leaves were read in")
	}
}
