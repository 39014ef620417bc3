package ledger

// The reference receipt verifier: what `tally receipt check` runs, and what
// anyone can re-implement from the wire forms below. It reads nothing but
// its arguments: a receipt file, the public keys, and the receipts route's
// answer; no store, no keyring, no Tally state.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
)

// ReceiptFile is the file the voting page lets a voter download
// (tally-receipt-<poll>-<vote_id>.json). Salt and choice together show
// how the voter voted: whoever holds the file can see it.
type ReceiptFile struct {
	Receipt receipt.Receipt `json:"receipt"`
	// Salt opens the receipt's commitment (base64url, 32 bytes).
	Salt string `json:"salt"`
	// Choice is the ballot as the voter cast it. Optional: without it a
	// verifier can still try each single option of the poll.
	Choice  *FileChoice `json:"choice,omitempty"`
	PollURL string      `json:"poll_url,omitempty"`
	KeysURL string      `json:"keys_url,omitempty"`
}

// FileChoice is a ballot's choice in a receipt file.
type FileChoice struct {
	OptionIDs []id.ID `json:"option_ids"`
	Scores    []int   `json:"scores,omitempty"`
}

// KeySet is the JSON Web Key Set the well-known route serves.
type KeySet struct {
	Keys []receipt.JWK `json:"keys"`
}

// ProofAnswer is the receipts route's answer
// (GET /v1/polls/{id}/receipts/{vote_id}), or a file holding one: the
// server writes it (httpapi) and the verifier reads it, one type so the
// two cannot drift.
type ProofAnswer struct {
	PollID string `json:"poll_id"`
	VoteID string `json:"vote_id"`
	Status string `json:"status"`
	// CurrentVersion is the receipt version (ballot_version) of the
	// ballot's current version: the one a superseded receipt was replaced
	// by, or the revoke.
	CurrentVersion uint32 `json:"current_version"`
	// Commitment is the ballot's commitment as its leaf holds it: 32 zero
	// bytes for a ballot recorded before receipts. Only when recorded or
	// included: a superseded or revoked answer shows no commitment.
	Commitment string `json:"commitment,omitempty"`
	RecordedAt string `json:"recorded_at"`
	// Set when included and not withheld.
	LeafIndex *uint64   `json:"leaf_index,omitempty"`
	TreeSize  *uint64   `json:"tree_size,omitempty"`
	Proof     []string  `json:"proof,omitempty"`
	TreeHead  *HeadWire `json:"tree_head,omitempty"`
	// ProofWithheld is "results_hidden" when an included ballot's proof is
	// held back: the tree size is the poll's ballot count.
	ProofWithheld string `json:"proof_withheld,omitempty"`
}

// HeadWire is a signed tree head on the wire; binary fields are base64url
// without padding, like receipts and the keys.
type HeadWire struct {
	PollID   string `json:"poll_id"`
	Size     uint64 `json:"size"`
	Root     string `json:"root"`
	FrozenAt string `json:"frozen_at"`
	KeyID    string `json:"kid"`
	Alg      string `json:"alg"`
	Sig      string `json:"sig"`
}

// Outcome is one step's result.
type Outcome string

// Outcomes. Only Failed makes a report fail: Skipped and Pending say what
// could not be checked yet, and why, in the step's detail.
const (
	Passed  Outcome = "ok"
	Failed  Outcome = "FAILED"
	Skipped Outcome = "skipped"
	Pending Outcome = "pending"
)

// Step is one line of a report.
type Step struct {
	Name    string
	Outcome Outcome
	Detail  string
}

// Report is a receipt check's result, one step per property.
type Report struct {
	Steps []Step
	// Choice is the choice the salt opened (nil unless it did).
	Choice *FileChoice
	// Included is true when the inclusion proof and its head verified.
	Included bool
}

// OK is true when no step failed.
func (r Report) OK() bool {
	for _, s := range r.Steps {
		if s.Outcome == Failed {
			return false
		}
	}
	return true
}

func (r *Report) add(name string, o Outcome, format string, args ...any) {
	r.Steps = append(r.Steps, Step{Name: name, Outcome: o, Detail: fmt.Sprintf(format, args...)})
}

// CheckInput is what CheckReceipt verifies. Keys nil skips the signature
// steps; Proof nil skips the inclusion step; Options, when known, are the
// poll's option ids, tried one by one when the file carries no choice.
type CheckInput struct {
	File    ReceiptFile
	Keys    *KeySet
	Proof   *ProofAnswer
	Options []id.ID
}

// Step names, as printed.
const (
	StepSignature = "receipt signature"
	StepOpening   = "salt opens the commitment"
	StepInclusion = "inclusion in the ledger"
	StepHead      = "tree head signature"
)

// CheckReceipt verifies a receipt file: its signature against the keys,
// that the salt opens its commitment to the choice, and, given the
// receipts route's answer, that the inclusion proof leads to the signed
// tree head's root and that the head's signature verifies.
func CheckReceipt(in CheckInput) Report {
	var rep Report
	r := in.File.Receipt

	keyFor := func(kid string) (ed25519.PublicKey, error) {
		for _, j := range in.Keys.Keys {
			if j.KeyID == kid {
				return receipt.PublicKeyFromJWK(j)
			}
		}
		return nil, fmt.Errorf("no key %q among the %d served", kid, len(in.Keys.Keys))
	}

	if in.Keys == nil {
		rep.add(StepSignature, Skipped, "no keys given")
	} else if pub, err := keyFor(r.KeyID); err != nil {
		rep.add(StepSignature, Failed, "%v", err)
	} else if err := r.VerifyWith(pub); err != nil {
		rep.add(StepSignature, Failed, "the signature does not verify with key %s: the receipt was changed or is not Tally's", r.KeyID)
	} else {
		rep.add(StepSignature, Passed, "signed by key %s", r.KeyID)
	}

	checkOpening(&rep, in)

	if in.Proof == nil {
		rep.add(StepInclusion, Skipped, "no proof given")
		return rep
	}
	checkInclusion(&rep, in, keyFor)
	return rep
}

func checkOpening(rep *Report, in CheckInput) {
	r := in.File.Receipt
	salt, err := receipt.DecodeSalt(in.File.Salt)
	if err != nil {
		rep.add(StepOpening, Failed, "the salt is not 32 bytes of base64url")
		return
	}
	var tries []FileChoice
	if c := in.File.Choice; c != nil {
		tries = append(tries, *c)
		// The order the server stored may differ from the order given
		// for an unordered ballot; whatever opens is the committed one.
		if sorted := slices.Clone(c.OptionIDs); len(c.Scores) == 0 {
			slices.SortFunc(sorted, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
			tries = append(tries, FileChoice{OptionIDs: sorted})
		}
	} else {
		for _, o := range in.Options {
			tries = append(tries, FileChoice{OptionIDs: []id.ID{o}})
		}
	}
	if len(tries) == 0 {
		rep.add(StepOpening, Skipped, "the file carries no choice and the poll's options are unknown")
		return
	}
	for _, c := range tries {
		if r.OpenBallot(salt, c.OptionIDs, c.Scores) == nil {
			c := c
			rep.Choice = &c
			rep.add(StepOpening, Passed, "the commitment is to option(s) %s", joinIDs(c.OptionIDs))
			return
		}
	}
	if in.File.Choice != nil {
		rep.add(StepOpening, Failed, "salt and choice do not open the commitment")
	} else {
		rep.add(StepOpening, Failed, "the salt opens the commitment to no single option of the poll")
	}
}

func checkInclusion(rep *Report, in CheckInput, keyFor func(string) (ed25519.PublicKey, error)) {
	r, p := in.File.Receipt, in.Proof
	if p.PollID != r.PollID.String() || p.VoteID != r.VoteID.String() {
		rep.add(StepInclusion, Failed, "the proof is for vote %s of poll %s, not this receipt's", p.VoteID, p.PollID)
		return
	}
	if c, err := base64.RawURLEncoding.DecodeString(p.Commitment); err != nil || !bytes.Equal(c, r.Commitment[:]) {
		rep.add(StepInclusion, Failed, "the ledger holds another commitment for this vote id")
		return
	}
	switch {
	case p.Status == "recorded":
		rep.add(StepInclusion, Pending, "recorded; the poll's ledger is not frozen yet, so there is no proof to check")
		return
	case p.Status == "included" && p.ProofWithheld != "":
		rep.add(StepInclusion, Pending, "included, but the proof is withheld (%s): the poll's results are hidden from this reader", p.ProofWithheld)
		return
	case p.Status != "included" || p.TreeHead == nil || p.LeafIndex == nil || p.TreeSize == nil:
		rep.add(StepInclusion, Failed, "status %q carries no proof", p.Status)
		return
	}
	head, err := p.TreeHead.Decode()
	if err != nil {
		rep.add(StepInclusion, Failed, "%v", err)
		return
	}
	if head.PollID != r.PollID {
		rep.add(StepInclusion, Failed, "the tree head is poll %s's", head.PollID)
		return
	}
	if *p.TreeSize != head.Size {
		rep.add(StepInclusion, Failed, "tree size %d differs from the signed head's %d", *p.TreeSize, head.Size)
		return
	}
	path := make([]Hash, len(p.Proof))
	for i, s := range p.Proof {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != HashSize {
			rep.add(StepInclusion, Failed, "proof hash %d is malformed", i)
			return
		}
		copy(path[i][:], b)
	}
	if err := VerifyInclusion(*p.LeafIndex, head.Size, BallotLeaf(r.VoteID, r.Commitment), path, head.Root); err != nil {
		rep.add(StepInclusion, Failed, "the proof does not lead to the signed root: %v", err)
		return
	}
	rep.add(StepInclusion, Passed, "leaf %d of %d leads to root %s", *p.LeafIndex, head.Size,
		base64.RawURLEncoding.EncodeToString(head.Root[:]))
	if in.Keys == nil {
		rep.add(StepHead, Skipped, "no keys given")
		return
	}
	pub, err := keyFor(head.KeyID)
	if err != nil {
		rep.add(StepHead, Failed, "%v", err)
		return
	}
	if err := head.VerifyWith(pub); err != nil {
		rep.add(StepHead, Failed, "the head's signature does not verify with key %s", head.KeyID)
		return
	}
	rep.add(StepHead, Passed, "signed by key %s, frozen %s", head.KeyID, head.FrozenAt.Format(time.RFC3339))
	rep.Included = true
}

// HeadWireOf writes a signed tree head's wire form, which Decode reads
// back: frozen_at at the millisecond precision the head is signed at.
func HeadWireOf(h receipt.TreeHead) HeadWire {
	b64 := base64.RawURLEncoding.EncodeToString
	return HeadWire{PollID: h.PollID.String(), Size: h.Size, Root: b64(h.Root[:]),
		FrozenAt: h.FrozenAt.UTC().Format(receipt.TimeLayout), KeyID: h.KeyID, Alg: "EdDSA", Sig: b64(h.Sig)}
}

// Decode reads a tree head's wire form (shapes only; VerifyWith checks it).
func (w HeadWire) Decode() (receipt.TreeHead, error) {
	var h receipt.TreeHead
	if w.Alg != "EdDSA" {
		return h, fmt.Errorf("tree head: alg %q, want EdDSA", w.Alg)
	}
	pollID, err := id.Parse(w.PollID)
	if err != nil {
		return h, errors.New("tree head: malformed poll_id")
	}
	root, err := base64.RawURLEncoding.DecodeString(w.Root)
	if err != nil || len(root) != HashSize {
		return h, errors.New("tree head: malformed root")
	}
	sig, err := base64.RawURLEncoding.DecodeString(w.Sig)
	if err != nil {
		return h, errors.New("tree head: malformed sig")
	}
	at, err := time.Parse(time.RFC3339Nano, w.FrozenAt)
	if err != nil {
		return h, errors.New("tree head: malformed frozen_at")
	}
	h = receipt.TreeHead{PollID: pollID, Size: w.Size, FrozenAt: at.UTC(), KeyID: w.KeyID, Sig: sig}
	copy(h.Root[:], root)
	return h, nil
}

// ParseReceiptFile reads a receipt file; a JSON document without a
// "receipt" field is refused with a sentence saying so.
func ParseReceiptFile(b []byte) (ReceiptFile, error) {
	var f ReceiptFile
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return f, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := probe["receipt"]; !ok {
		return f, errors.New(`no "receipt" field: not a Tally receipt file`)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, err
	}
	return f, nil
}

func joinIDs(ids []id.ID) string {
	s := make([]string, len(ids))
	for i, o := range ids {
		s[i] = o.String()
	}
	return strings.Join(s, ", ")
}
