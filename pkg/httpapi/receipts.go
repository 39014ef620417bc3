package httpapi

import (
	"encoding/base64"
	"errors"
	"math"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
)

// ReceiptKeysPath is where the public receipt keys are served. It sits
// outside /v1 under /.well-known (RFC 8615) because a verifier fetches it
// by convention, from the host named on a receipt, without reading the API.
const ReceiptKeysPath = "/.well-known/tally-receipt-keys"

// receiptKeysMaxAge is how long a verifier or CDN may cache the list. A key
// is added to the ring before it signs (rotation is restart-driven), so a
// cached list misses a new key for at most this long after a rotation.
const receiptKeysMaxAge = "public, max-age=300"

// receiptKeySet is the JSON Web Key Set shape (RFC 7517 §5).
type receiptKeySet struct {
	Keys []receipt.JWK `json:"keys"`
}

// receiptKeys serves every public key on the ring, the active one first. A
// nil ring (receipts not configured) serves an empty set rather than a 404,
// so a verifier can tell "no keys" from "wrong host".
func receiptKeys(kr *receipt.Keyring) gin.HandlerFunc {
	set := receiptKeySet{Keys: []receipt.JWK{}}
	if kr != nil {
		set.Keys = kr.JWKs()
	}
	return func(c *gin.Context) {
		c.Header("Cache-Control", receiptKeysMaxAge)
		c.JSON(http.StatusOK, set)
	}
}

// receiptTimeLayout is RFC 3339 in UTC at millisecond precision, the
// precision receipts and tree heads are signed at.
const receiptTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// treeHeadJSON is a signed tree head on the wire; binary fields are
// base64url without padding, like receipts and the keys.
type treeHeadJSON struct {
	PollID   string `json:"poll_id"`
	Size     uint64 `json:"size"`
	Root     string `json:"root"`
	FrozenAt string `json:"frozen_at"`
	KeyID    string `json:"kid"`
	Alg      string `json:"alg"`
	Sig      string `json:"sig"`
}

// receiptStatusJSON answers GET /v1/polls/{id}/receipts/{vote_id}.
type receiptStatusJSON struct {
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
	LeafIndex *uint64       `json:"leaf_index,omitempty"`
	TreeSize  *uint64       `json:"tree_size,omitempty"`
	Proof     []string      `json:"proof,omitempty"`
	TreeHead  *treeHeadJSON `json:"tree_head,omitempty"`
	// ProofWithheld is "results_hidden" when an included ballot's proof is
	// held back: the tree size is the poll's ballot count.
	ProofWithheld string `json:"proof_withheld,omitempty"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func receiptStatusOf(a inclusion.Answer) receiptStatusJSON {
	out := receiptStatusJSON{PollID: a.PollID.String(), VoteID: a.VoteID.String(), Status: string(a.Status),
		CurrentVersion: a.CurrentVersion, RecordedAt: a.RecordedAt.UTC().Format(receiptTimeLayout)}
	if a.Status == inclusion.Recorded || a.Status == inclusion.Included {
		c := make([]byte, receipt.CommitmentSize)
		copy(c, a.Commitment)
		out.Commitment = b64(c)
	}
	if a.Withheld {
		out.ProofWithheld = "results_hidden"
	}
	if a.Proof != nil && a.Head != nil {
		out.LeafIndex, out.TreeSize = &a.Proof.Index, &a.Proof.Size
		out.Proof = make([]string, len(a.Proof.Path))
		for i, h := range a.Proof.Path {
			out.Proof[i] = b64(h[:])
		}
		out.TreeHead = &treeHeadJSON{PollID: a.Head.PollID.String(), Size: a.Head.Size, Root: b64(a.Head.Root[:]),
			FrozenAt: a.Head.FrozenAt.UTC().Format(receiptTimeLayout), KeyID: a.Head.KeyID, Alg: "EdDSA", Sig: b64(a.Head.Sig)}
	}
	return out
}

// receipt answers whether a vote id's commitment is in its poll's ledger.
// It is public (a receipt is all its holder has) and never shows a choice;
// the tree size, which is the ballot count, is shown only to a caller who
// may see the poll's results. ?version= is the receipt's ballot_version:
// a receipt of an earlier version than the current one is superseded;
// without it the current version is answered.
func (h *handlers) receipt(c *gin.Context) {
	if h.inclusion == nil {
		abort(c, apperr.ErrUnavailable)
		return
	}
	voteID, err := pathUUID(c, "vote_id")
	if err != nil {
		abort(c, err)
		return
	}
	version, err := queryInt(c, "version", 0, 1, math.MaxUint32)
	if err != nil {
		abort(c, err)
		return
	}
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	ctx := c.Request.Context()
	seeResults := func() (bool, error) {
		err := h.canSeeResults(ctx, c, p)
		if errors.Is(err, tally.ErrResultsHidden) {
			return false, nil
		}
		return err == nil, err
	}
	a, err := h.inclusion.Lookup(ctx, p, voteID, uint32(version), seeResults)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, receiptStatusOf(a))
}
