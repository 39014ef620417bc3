package httpapi

import (
	"encoding/base64"
	"errors"
	"math"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/ledger"
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

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// receiptStatusOf is the answer of GET /v1/polls/{id}/receipts/{vote_id}
// in the wire form the reference verifier reads (ledger.ProofAnswer).
func receiptStatusOf(a inclusion.Answer) ledger.ProofAnswer {
	out := ledger.ProofAnswer{PollID: a.PollID.String(), VoteID: a.VoteID.String(), Status: string(a.Status),
		CurrentVersion: a.CurrentVersion, RecordedAt: a.RecordedAt.UTC().Format(receipt.TimeLayout)}
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
		head := ledger.HeadWireOf(*a.Head)
		out.TreeHead = &head
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
