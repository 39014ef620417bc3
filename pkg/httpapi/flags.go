package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// flags answers GET /v1/polls/{poll_id}/flags: for the poll's owner, how
// many votes bot signals flagged and why, and the results with and without
// them (aggregates only, never a voter). Who may see it and the audit entry
// are tally.Service.Flags's concern: the owner alone, whom the visibility
// rule (tally.Visible) shows the results in every mode, so no
// results_visibility narrows or widens it.
func (h *handlers) flags(c *gin.Context) {
	id, err := pathUUID(c, "poll_id")
	if err != nil {
		abort(c, err)
		return
	}
	ctx := c.Request.Context()
	p, err := h.polls.Cached(ctx, id)
	if err != nil {
		abort(c, err)
		return
	}
	caller, _ := principal(c)
	r, err := h.tally.Flags(ctx, p, caller.UserID)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
