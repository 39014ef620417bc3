package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/web"
)

// embedPages serves the embed widget (web.EmbedRoute). It is a page, not
// an API operation: its answers are HTML (pkg/web's), never the error
// envelope, and the poll's embed_origins decide its frame-ancestors.
type embedPages struct {
	polls *poll.Service
	page  *web.Embed
	// served counts answers by outcome: framable (the poll lists origins),
	// unframable (it lists none), not_found, unavailable.
	served *prometheus.CounterVec
}

func newEmbedPages(polls *poll.Service, reg prometheus.Registerer) (*embedPages, error) {
	page, err := web.NewEmbed()
	if err != nil {
		return nil, err
	}
	e := &embedPages{polls: polls, page: page, served: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_embed_pages_total",
		Help: "Embed widget pages served, by outcome: framable (the poll lists embed origins), unframable (it lists none), not_found, unavailable.",
	}, []string{"outcome"})}
	for _, o := range []string{"framable", "unframable", "not_found", "unavailable"} {
		e.served.WithLabelValues(o)
	}
	reg.MustRegister(e.served)
	return e, nil
}

// serve answers the widget for the path's poll. The origins come from the
// poll's view in this process (poll.Service.Cached), as every read route's
// poll does: no read of the system of record per page beyond a poll this
// process has never seen. A poll that does not exist, or cannot be read,
// still gets the page (its script then says why there is nothing to show)
// with frame-ancestors 'none', so no error page is ever framed.
func (e *embedPages) serve(c *gin.Context) {
	pollID, err := pathUUID(c, "poll_id")
	if err != nil {
		e.answer(c, http.StatusNotFound, "not_found", nil)
		return
	}
	p, err := e.polls.Cached(c.Request.Context(), pollID)
	switch {
	case errors.Is(err, poll.ErrNotFound):
		e.answer(c, http.StatusNotFound, "not_found", nil)
	case err != nil:
		loggerFrom(c).Warn("embed page: poll unreadable", zap.Stringer("poll_id", pollID), zap.Error(err))
		c.Header("Retry-After", "1")
		e.answer(c, http.StatusServiceUnavailable, "unavailable", nil)
	case len(p.Settings.EmbedOrigins) == 0:
		e.answer(c, http.StatusOK, "unframable", nil)
	default:
		e.answer(c, http.StatusOK, "framable", p.Settings.EmbedOrigins)
	}
}

func (e *embedPages) answer(c *gin.Context, status int, outcome string, origins []string) {
	e.served.WithLabelValues(outcome).Inc()
	e.page.Serve(c, status, origins)
}
