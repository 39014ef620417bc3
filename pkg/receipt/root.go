package receipt

import (
	"crypto/ed25519"
	"encoding/binary"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// TreeHead is a poll's frozen ledger: the Merkle root over its current
// ballots' leaves (pkg/ledger) and their count, signed with the receipt key.
// An inclusion proof is checked against a signed head, because a proof alone
// does not bind the tree's size.
type TreeHead struct {
	PollID   id.ID
	Size     uint64
	Root     [32]byte
	FrozenAt time.Time
	KeyID    string
	Sig      []byte
}

const treeHeadTag = "tally-ledger-head-v1\x00"

// SigningBytes is the canonical message a tree head's signature covers:
//
//	"tally-ledger-head-v1" 0x00   21 bytes
//	poll id                       16 bytes
//	size                           8 bytes (big-endian)
//	root                          32 bytes
//	frozen at                      8 bytes (signed big-endian Unix milliseconds)
//	len(key id), key id           1 + len bytes
//
// Its tag differs from a receipt's, so neither signature can pass as the other.
func (h *TreeHead) SigningBytes() []byte {
	kid := h.KeyID
	if len(kid) > 255 {
		kid = kid[:255]
	}
	b := make([]byte, 0, len(treeHeadTag)+16+8+32+8+1+len(kid))
	b = append(b, treeHeadTag...)
	b = append(b, h.PollID[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Size)
	b = append(b, h.Root[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.FrozenAt.UnixMilli()))
	b = append(b, byte(len(kid)))
	return append(b, kid...)
}

// SignHead signs h with the active key.
func (kr *Keyring) SignHead(h *TreeHead) error {
	if kr.active == nil {
		return ErrNoSigningKey
	}
	h.KeyID = kr.active.ID
	h.FrozenAt = h.FrozenAt.UTC().Truncate(time.Millisecond)
	h.Sig = ed25519.Sign(kr.active.private, h.SigningBytes())
	return nil
}

// VerifyWith checks h's signature against one public key.
func (h *TreeHead) VerifyWith(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, h.SigningBytes(), h.Sig) {
		return ErrBadSignature
	}
	return nil
}
