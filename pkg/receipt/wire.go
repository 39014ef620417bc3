package receipt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// Issue makes the receipt for a ballot just recorded: a fresh salt, the
// commitment to the ballot's choice, and the ring's signature. The caller
// stores the commitment with the ballot and hands the salt to the voter
// once; Tally keeps no copy of the salt.
func (kr *Keyring) Issue(pollID, voteID id.ID, optionIDs []id.ID, recordedAt time.Time, version uint32) (Receipt, []byte, error) {
	salt, err := NewSalt()
	if err != nil {
		return Receipt{}, nil, err
	}
	c, err := Commit(salt, optionIDs)
	if err != nil {
		return Receipt{}, nil, err
	}
	r := Receipt{PollID: pollID, VoteID: voteID, Commitment: c, RecordedAt: recordedAt, BallotVersion: version}
	if err := kr.Sign(&r); err != nil {
		return Receipt{}, nil, err
	}
	return r, salt, nil
}

// TimeLayout is RFC 3339 in UTC at millisecond precision: exactly what is
// signed, so a receipt or tree head read back from JSON verifies.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// wireReceipt is a receipt's JSON form. Binary fields are base64url without
// padding, like the JWKs that verify them.
type wireReceipt struct {
	PollID        id.ID  `json:"poll_id"`
	VoteID        id.ID  `json:"vote_id"`
	Commitment    string `json:"commitment"`
	RecordedAt    string `json:"recorded_at"`
	BallotVersion uint32 `json:"ballot_version"`
	KeyID         string `json:"kid"`
	Alg           string `json:"alg"`
	Signature     string `json:"sig"`
}

// MarshalJSON writes the receipt's wire form.
func (r Receipt) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireReceipt{
		PollID: r.PollID, VoteID: r.VoteID,
		Commitment:    base64.RawURLEncoding.EncodeToString(r.Commitment[:]),
		RecordedAt:    r.RecordedAt.UTC().Format(TimeLayout),
		BallotVersion: r.BallotVersion, KeyID: r.KeyID, Alg: "EdDSA",
		Signature: base64.RawURLEncoding.EncodeToString(r.Signature),
	})
}

// UnmarshalJSON reads the wire form. It checks shapes only; Verify checks
// the signature.
func (r *Receipt) UnmarshalJSON(b []byte) error {
	var w wireReceipt
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Alg != "EdDSA" {
		return fmt.Errorf("receipt: alg %q, want EdDSA", w.Alg)
	}
	c, err := base64.RawURLEncoding.DecodeString(w.Commitment)
	if err != nil || len(c) != CommitmentSize {
		return errors.New("receipt: malformed commitment")
	}
	sig, err := base64.RawURLEncoding.DecodeString(w.Signature)
	if err != nil {
		return errors.New("receipt: malformed sig")
	}
	at, err := time.Parse(time.RFC3339Nano, w.RecordedAt)
	if err != nil {
		return fmt.Errorf("receipt: recorded_at: %w", err)
	}
	*r = Receipt{PollID: w.PollID, VoteID: w.VoteID, RecordedAt: at.UTC(), BallotVersion: w.BallotVersion,
		KeyID: w.KeyID, Signature: sig}
	copy(r.Commitment[:], c)
	return nil
}

// EncodeSalt is the salt's wire form (base64url, no padding).
func EncodeSalt(salt []byte) string { return base64.RawURLEncoding.EncodeToString(salt) }

// DecodeSalt reads a salt's wire form.
func DecodeSalt(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != SaltSize {
		return nil, ErrBadSalt
	}
	return b, nil
}
