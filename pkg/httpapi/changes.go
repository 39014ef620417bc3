package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/vote"
)

// changeResponse answers PUT and DELETE …/votes/me: what this request did
// (status changed or revoked, and the ballot version it wrote) and the
// ballot it changed, whose vote_id never changes. A retry is answered with
// the same status and version (Idempotent-Replayed: true); its choice is
// shown only while the ballot is still at that version. A change answers
// the new version's signed receipt and the fresh salt that opens it; a
// replay answers the receipt (while the ballot is still at that version)
// and never a salt; a revoke answers neither (a revoked ballot has no
// commitment).
type changeResponse struct {
	Status    string           `json:"status"`
	PollID    string           `json:"poll_id"`
	VoteID    string           `json:"vote_id"`
	RequestID string           `json:"request_id"`
	Version   int              `json:"version"`
	OptionID  string           `json:"option_id,omitempty"`
	OptionIDs []id.ID          `json:"option_ids,omitempty"`
	Scores    []int            `json:"scores,omitempty"`
	ChangedAt *time.Time       `json:"changed_at,omitempty"`
	Receipt   *receipt.Receipt `json:"receipt,omitempty"`
	Salt      string           `json:"salt,omitempty"`
}

func (h *handlers) toChange(r vote.ChangeReceipt) changeResponse {
	b := r.Ballot
	out := changeResponse{Status: r.Outcome.Kind, PollID: b.PollID.String(), VoteID: b.VoteID.String(),
		RequestID: r.RequestID.String(), Version: r.Outcome.Version}
	if b.Version == r.Outcome.Version {
		if !b.ChangedAt.IsZero() {
			out.ChangedAt = &b.ChangedAt
		}
		if !b.Revoked {
			out.OptionIDs, out.Scores = b.OptionIDs, b.Scores
			if len(b.OptionIDs) == 1 {
				out.OptionID = b.OptionIDs[0].String()
			}
			out.Receipt = h.votes.SignReceipt(b)
			if out.Receipt != nil && r.Salt != nil {
				out.Salt = receipt.EncodeSalt(r.Salt)
			}
		}
	}
	return out
}

// changeVote replaces the caller's ballot (PUT …/votes/me) with the body's
// choice, in the same shape as a vote.
func (h *handlers) changeVote(c *gin.Context) {
	h.voteChange(c, false)
}

// revokeVote revokes the caller's ballot (DELETE …/votes/me); a body is
// ignored.
func (h *handlers) revokeVote(c *gin.Context) {
	h.voteChange(c, true)
}

func (h *handlers) voteChange(c *gin.Context, revoke bool) {
	in, err := readBallotInput(c, !revoke)
	if err != nil {
		abort(c, err)
		return
	}
	caller, _ := principal(c)
	r := vote.ChangeRequest{PollID: in.PollID, VoterID: caller.UserID, Anonymous: caller.Anonymous,
		Credentials: c.Request.Header, Revoke: revoke, IdempotencyKey: in.Key, OptionIDs: in.OptionIDs, Scores: in.Scores}
	out, err := h.votes.Change(c.Request.Context(), r)
	if err != nil {
		abort(c, err)
		return
	}
	if out.Queued {
		// Async mode: queued behind the voter's earlier requests; follow
		// request_id.
		writeJSON(c, http.StatusAccepted, appendAccepted(make([]byte, 0, acceptedSize), out.Ballot.PollID, out.RequestID, out.Ballot.VoteID, out.Salt))
		return
	}
	if out.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.JSON(http.StatusOK, h.toChange(out))
}
