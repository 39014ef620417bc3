package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// visiblePoll reads the path's poll and checks the caller may see its
// results; on failure it has answered and returns nil.
func (h *handlers) visiblePoll(c *gin.Context) *poll.Poll {
	p := h.pathPoll(c)
	if p == nil {
		return nil
	}
	if err := h.canSeeResults(c.Request.Context(), c, p); err != nil {
		abort(c, err)
		return nil
	}
	return p
}

// pathPoll reads the poll the path's poll_id names (through the metadata
// cache), or answers the error (400 for a malformed id, 404 for no such
// poll) and returns nil.
func (h *handlers) pathPoll(c *gin.Context) *poll.Poll {
	id, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return nil
	}
	p, err := h.polls.Cached(c.Request.Context(), id)
	if err != nil {
		abort(c, err)
		return nil
	}
	return p
}

// canSeeResults asks tally's visibility rule (tally.Visible, through the
// service that counts its refusals) about the caller: REST results and the
// live socket, at its handshake and each recheck, all ask here. An
// anonymous voter on an invite or proof-of-work poll is a voter by the code
// or challenge it sends; one it sends that is not valid reads as the token.
func (h *handlers) canSeeResults(ctx context.Context, c *gin.Context, p *poll.Poll) error {
	caller, signedIn := principal(c)
	return h.tally.VisibleTo(p, caller.UserID, signedIn, func() (bool, error) {
		voter, err := h.reader(c, p)
		if err != nil {
			voter = caller.UserID
		}
		return h.votes.HasVoted(ctx, p.ID, voter)
	})
}

func parseMode(c *gin.Context) (tally.Mode, error) {
	switch m := tally.Mode(c.DefaultQuery("tally", string(tally.Live))); m {
	case tally.Live, tally.Final:
		return m, nil
	}
	return "", apperr.Invalid("tally", `must be "live" or "final"`)
}

func (h *handlers) results(c *gin.Context) {
	mode, err := parseMode(c)
	if err != nil {
		abort(c, err)
		return
	}
	p := h.visiblePoll(c)
	if p == nil {
		return
	}
	r, err := h.tally.Results(c.Request.Context(), p, mode)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
