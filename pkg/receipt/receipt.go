// Package receipt issues and checks the signed receipts that let a voter
// confirm their ballot was recorded, and later that it is in the poll's ledger.
package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// SaltSize is the length of the salt a voter receives with a receipt. It is
// fixed, not merely bounded: with a variable-length salt the split between
// salt and choice in SHA-256(salt ‖ choice) would be the holder's to choose.
const SaltSize = 32

// CommitmentSize is the length of a commitment (SHA-256).
const CommitmentSize = sha256.Size

// Errors Verify and the commitment check return.
var (
	ErrBadSignature   = errors.New("receipt: signature does not verify")
	ErrUnknownKey     = errors.New("receipt: unknown key id")
	ErrBadSalt        = errors.New("receipt: salt has the wrong length")
	ErrBadCommitment  = errors.New("receipt: salt and choice do not match the commitment")
	ErrNoSigningKey   = errors.New("receipt: no signing key configured")
	ErrTooManyOptions = errors.New("receipt: too many options in one choice")
	ErrBadScores      = errors.New("receipt: a score ballot has one score from 0 to 255 per option")
)

// Receipt is what the server signs for one recorded ballot. The salt that
// opens Commitment is not part of it: it is handed to the voter beside the
// receipt, once, and never stored or published by Tally.
type Receipt struct {
	PollID     id.ID
	VoteID     id.ID
	Commitment [CommitmentSize]byte
	// RecordedAt is when the ballot was accepted. It is signed at millisecond
	// precision, the precision of a Cassandra timestamp, so a receipt rebuilt
	// from a stored row signs the same bytes; SigningBytes truncates.
	RecordedAt time.Time
	// BallotVersion is 1 for a voter's first ballot in the poll and goes up
	// by one with each change, so a receipt for an older version can be told
	// apart from the current one.
	BallotVersion uint32
	KeyID         string
	Signature     []byte
}

// signingTag starts every signed message: it separates receipt signatures
// from anything else the same key might ever sign, and names the layout.
const signingTag = "tally-receipt-v1\x00"

// SigningBytes is the canonical message the signature covers. Every field
// has a fixed width except the key id, which is length-prefixed, so no two
// receipts share an encoding:
//
//	"tally-receipt-v1" 0x00        17 bytes
//	poll id                        16 bytes (UUID, network order)
//	vote id                        16 bytes
//	commitment                     32 bytes
//	recorded at                     8 bytes (signed big-endian Unix milliseconds, UTC)
//	ballot version                  4 bytes (big-endian)
//	len(key id)                     1 byte
//	key id                         len bytes (ASCII)
//
// The key id is covered so a receipt cannot be re-labelled with another
// key's id; Ed25519 itself needs no prehash (RFC 8032 PureEdDSA).
func (r *Receipt) SigningBytes() []byte {
	kid := r.KeyID
	if len(kid) > 255 {
		kid = kid[:255] // never a valid kid; the truncation only keeps the layout total
	}
	b := make([]byte, 0, len(signingTag)+16+16+CommitmentSize+8+4+1+len(kid))
	b = append(b, signingTag...)
	b = append(b, r.PollID[:]...)
	b = append(b, r.VoteID[:]...)
	b = append(b, r.Commitment[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.RecordedAt.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, r.BallotVersion)
	b = append(b, byte(len(kid)))
	return append(b, kid...)
}

// VerifyWith checks r's signature against one public key, whatever key id it
// carries: the stand-alone check for a verifier that fetched the key itself.
func (r *Receipt) VerifyWith(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, r.SigningBytes(), r.Signature) {
		return ErrBadSignature
	}
	return nil
}

// NewSalt returns SaltSize random bytes.
func NewSalt() ([]byte, error) {
	s := make([]byte, SaltSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("read salt: %w", err)
	}
	return s, nil
}

// maxOptions bounds a choice so its count fits the encoding's two bytes.
const maxOptions = 1<<16 - 1

// EncodeChoice is the canonical encoding of a ballot's choice: the number of
// options as a big-endian uint16, then each option id's 16 bytes, in the
// ballot's stored order (a ranked ballot's order is its preference; the vote
// path stores other methods' options in the order it normalised them to).
func EncodeChoice(optionIDs []id.ID) ([]byte, error) {
	if len(optionIDs) > maxOptions {
		return nil, ErrTooManyOptions
	}
	b := make([]byte, 2, 2+16*len(optionIDs))
	binary.BigEndian.PutUint16(b, uint16(len(optionIDs)))
	for _, o := range optionIDs {
		b = append(b, o[:]...)
	}
	return b, nil
}

// EncodeScoredChoice is the canonical encoding of a score ballot's choice:
// EncodeChoice(optionIDs), then one byte per option, scores[i] being the
// score given to optionIDs[i]. The count prefix fixes where the scores
// start, and a score ballot's encoding is n bytes longer than the same
// options' plain encoding, so no score ballot shares its bytes with a
// ballot of another method. With no scores (len(scores) == 0) it is
// EncodeChoice: plurality, approval and ranked ballots are unchanged.
func EncodeScoredChoice(optionIDs []id.ID, scores []int) ([]byte, error) {
	b, err := EncodeChoice(optionIDs)
	if err != nil || len(scores) == 0 {
		return b, err
	}
	if len(scores) != len(optionIDs) {
		return nil, ErrBadScores
	}
	for _, s := range scores {
		if s < 0 || s > 255 {
			return nil, ErrBadScores
		}
		b = append(b, byte(s))
	}
	return b, nil
}

// Commit is SHA-256(salt ‖ EncodeChoice(optionIDs)): it hides the choice from
// anyone without the salt and binds the salt's holder to exactly one choice.
func Commit(salt []byte, optionIDs []id.ID) ([CommitmentSize]byte, error) {
	return CommitBallot(salt, optionIDs, nil)
}

// CommitBallot is SHA-256(salt ‖ EncodeScoredChoice(optionIDs, scores)): the
// commitment to any ballot, a score ballot's scores included. With nil
// scores it is Commit.
func CommitBallot(salt []byte, optionIDs []id.ID, scores []int) ([CommitmentSize]byte, error) {
	if len(salt) != SaltSize {
		return [CommitmentSize]byte{}, ErrBadSalt
	}
	choice, err := EncodeScoredChoice(optionIDs, scores)
	if err != nil {
		return [CommitmentSize]byte{}, err
	}
	h := sha256.New()
	h.Write(salt)
	h.Write(choice)
	var c [CommitmentSize]byte
	h.Sum(c[:0])
	return c, nil
}

// OpenCommitment checks that salt and optionIDs open the receipt's
// commitment: what a voter (or whoever they show both to) runs to confirm
// which choice the receipt stands for.
func (r *Receipt) OpenCommitment(salt []byte, optionIDs []id.ID) error {
	return r.OpenBallot(salt, optionIDs, nil)
}

// OpenBallot is OpenCommitment for any ballot, a score ballot's scores
// included.
func (r *Receipt) OpenBallot(salt []byte, optionIDs []id.ID, scores []int) error {
	c, err := CommitBallot(salt, optionIDs, scores)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(c[:], r.Commitment[:]) != 1 {
		return ErrBadCommitment
	}
	return nil
}
