package ledger_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
)

// proofBundle is what a voter would be handed after the freeze: the signed
// tree head and the receipt's leaf position and audit path.
type proofBundle struct {
	Head  receipt.TreeHead
	Index uint64
	Path  []ledger.Hash
}

// checkStandalone is a verifier that holds only a receipt (as JSON), a proof
// bundle and the public key: no store, no keyring, no Tally state.
func checkStandalone(receiptJSON []byte, b proofBundle, pub ed25519.PublicKey) error {
	var r receipt.Receipt
	if err := json.Unmarshal(receiptJSON, &r); err != nil {
		return err
	}
	if err := r.VerifyWith(pub); err != nil {
		return err
	}
	if err := b.Head.VerifyWith(pub); err != nil {
		return err
	}
	if b.Head.PollID != r.PollID {
		return errors.New("head is another poll's")
	}
	return ledger.VerifyInclusion(b.Index, b.Head.Size, ledger.BallotLeaf(r.VoteID, r.Commitment), b.Path, b.Head.Root)
}

func TestReceiptProofStandsAlone(t *testing.T) {
	keys, _ := receipt.NewDevKeys()
	kr, err := receipt.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	pub := kr.Keys()[0].Public
	poll := id.New()
	opts := []id.ID{id.New(), id.New(), id.New()}

	// 1,000 ballots, each with its receipt JSON as the voter got it.
	const n = 1000
	receipts := make(map[id.ID][]byte, n)
	leaves := make([][]byte, 0, n)
	at := time.Now()
	for i := range n {
		r, _, err := kr.Issue(poll, id.New(), opts[i%3:i%3+1], at.Add(time.Duration(i)*time.Millisecond), 1)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(r)
		receipts[r.VoteID] = js
		leaves = append(leaves, ledger.BallotLeaf(r.VoteID, r.Commitment))
	}
	ledger.SortLeaves(leaves)
	tree := ledger.New(leaves)
	head := receipt.TreeHead{PollID: poll, Size: tree.Size(), Root: tree.Root(), FrozenAt: at}
	if err := kr.SignHead(&head); err != nil {
		t.Fatal(err)
	}

	bundleFor := func(t *testing.T, i uint64) ([]byte, proofBundle) {
		t.Helper()
		var vote id.ID
		copy(vote[:], leaves[i][:16])
		path, err := tree.InclusionProof(i)
		if err != nil {
			t.Fatal(err)
		}
		return receipts[vote], proofBundle{Head: head, Index: i, Path: path}
	}
	for _, i := range []uint64{0, 1, 499, 511, 512, 998, 999} {
		js, b := bundleFor(t, i)
		if err := checkStandalone(js, b, pub); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}

	js, b := bundleFor(t, 7)
	t.Run("changed commitment in the receipt", func(t *testing.T) {
		var r receipt.Receipt
		_ = json.Unmarshal(js, &r)
		r.Commitment[0] ^= 1
		bad, _ := json.Marshal(r)
		if err := checkStandalone(bad, b, pub); !errors.Is(err, receipt.ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("receipt not in this ledger", func(t *testing.T) {
		other, _, _ := kr.Issue(poll, id.New(), opts[:1], at, 1)
		js2, _ := json.Marshal(other)
		if err := checkStandalone(js2, b, pub); !errors.Is(err, ledger.ErrProofMismatch) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("root changed after signing", func(t *testing.T) {
		b2 := b
		b2.Head.Root[31] ^= 1
		if err := checkStandalone(js, b2, pub); !errors.Is(err, receipt.ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("size changed after signing", func(t *testing.T) {
		b2 := b
		b2.Head.Size++
		if err := checkStandalone(js, b2, pub); !errors.Is(err, receipt.ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		k2, _ := receipt.NewDevKeys()
		other, _ := receipt.ParseKeys(k2)
		if err := checkStandalone(js, b, other.Keys()[0].Public); !errors.Is(err, receipt.ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
}
