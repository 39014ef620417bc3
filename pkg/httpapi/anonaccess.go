package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// The owner's invite codes and the proof-of-work challenge of polls whose
// anonymous voters vote one per code or per solved challenge (see
// pkg/anonaccess). The vote itself carries the code or the solution in a
// header (castVote).

type mintInvitesRequest struct {
	Count *int `json:"count"`
}

type invitesResponse struct {
	PollID string   `json:"poll_id"`
	Codes  []string `json:"codes"`
}

type inviteCountsResponse struct {
	PollID string `json:"poll_id"`
	Minted int    `json:"minted"`
	Used   int    `json:"used"`
	Max    int    `json:"max"`
}

type challengeResponse struct {
	PollID     string    `json:"poll_id"`
	Challenge  string    `json:"challenge"`
	Difficulty int       `json:"difficulty"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func (h *handlers) mintInvites(c *gin.Context) {
	pollID, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return
	}
	var req mintInvitesRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Count == nil {
		abort(c, apperr.Invalid("count", "is required"))
		return
	}
	p, err := h.polls.Cached(c.Request.Context(), pollID)
	if err != nil {
		abort(c, err)
		return
	}
	caller, _ := principal(c)
	codes, err := h.anon.Mint(c.Request.Context(), p, caller.UserID, *req.Count)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusCreated, invitesResponse{PollID: pollID.String(), Codes: codes})
}

func (h *handlers) inviteCounts(c *gin.Context) {
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	caller, _ := principal(c)
	n, err := h.anon.Counts(c.Request.Context(), p, caller.UserID)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, inviteCountsResponse{PollID: p.ID.String(), Minted: n.Minted, Used: n.Used, Max: n.Max})
}

func (h *handlers) challenge(c *gin.Context) {
	p := h.pathPoll(c)
	if p == nil {
		return
	}
	ch, err := h.anon.Challenge(p)
	if err != nil {
		abort(c, err)
		return
	}
	// Every answer is a new challenge: a cache handing one to many
	// clients would make them one voter.
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, challengeResponse{PollID: p.ID.String(), Challenge: ch.Value, Difficulty: ch.Difficulty,
		ExpiresAt: ch.ExpiresAt})
}

// reader is who the caller reads its own vote and requests as on p: an
// anonymous voter on an invite or proof-of-work poll sends the code or the
// solved challenge it voted with.
func (h *handlers) reader(c *gin.Context, p *poll.Poll) (id.ID, error) {
	caller, _ := principal(c)
	return h.anon.Identify(p, caller.UserID, caller.Anonymous, c.Request.Header)
}
