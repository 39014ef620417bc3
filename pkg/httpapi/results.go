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
	id, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return nil
	}
	p, err := h.polls.Cached(c.Request.Context(), id)
	if err == nil {
		err = h.canSeeResults(c.Request.Context(), c, p)
	}
	if err != nil {
		abort(c, err)
		return nil
	}
	return p
}

// canSeeResults applies the visibility rule: while a poll is open with
// show_results_during_voting off, only its owner and those who have voted
// see results.
func (h *handlers) canSeeResults(ctx context.Context, c *gin.Context, p *poll.Poll) error {
	if p.Settings.ShowResultsDuringVoting || p.StatusAt(h.now()) == poll.Closed {
		return nil
	}
	caller, ok := principal(c)
	if !ok {
		return tally.ErrResultsHidden
	}
	if caller.UserID == p.CreatorID {
		return nil
	}
	voted, err := h.votes.HasVoted(ctx, p.ID, caller.UserID)
	if err != nil {
		return err
	}
	if !voted {
		return tally.ErrResultsHidden
	}
	return nil
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
