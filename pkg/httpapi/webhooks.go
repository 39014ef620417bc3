package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/webhook"
)

type createWebhookRequest struct {
	URL *string `json:"url"`
}

type webhookResponse struct {
	WebhookID string    `json:"webhook_id"`
	PollID    string    `json:"poll_id"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
	// Secret is shown once, in the answer to the registration.
	Secret string `json:"secret,omitempty"`
}

type webhookListResponse struct {
	Webhooks []webhookResponse `json:"webhooks"`
}

type deliveryResponse struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Status     string    `json:"status"`
	Attempts   int       `json:"attempts"`
	StatusCode int       `json:"status_code"`
	LastError  string    `json:"last_error,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

type deliveryListResponse struct {
	Deliveries []deliveryResponse `json:"deliveries"`
}

func toWebhook(w webhook.Webhook) webhookResponse {
	return webhookResponse{WebhookID: w.ID.String(), PollID: w.PollID.String(), URL: w.URL, CreatedAt: w.CreatedAt}
}

func toDelivery(d webhook.Delivery) deliveryResponse {
	return deliveryResponse{EventID: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
		StatusCode: d.StatusCode, LastError: d.LastError, UpdatedAt: d.UpdatedAt}
}

// ownedPoll is the path's poll when the caller owns it (403 NOT_POLL_OWNER
// otherwise, as the other owner routes); nil when answered.
func (h *handlers) ownedPoll(c *gin.Context) *poll.Poll {
	p := h.pathPoll(c)
	if p == nil {
		return nil
	}
	caller, _ := principal(c)
	if caller.UserID != p.CreatorID {
		abort(c, poll.ErrNotOwner)
		return nil
	}
	if h.webhooks == nil {
		abort(c, apperr.ErrUnavailable)
		return nil
	}
	return p
}

// createWebhook answers POST /v1/polls/{poll_id}/webhooks.
func (h *handlers) createWebhook(c *gin.Context) {
	p := h.ownedPoll(c)
	if p == nil {
		return
	}
	var req createWebhookRequest
	if err := bind(c, &req); err != nil {
		abort(c, err)
		return
	}
	if req.URL == nil {
		abort(c, apperr.Invalid("url", "is required"))
		return
	}
	w, err := h.webhooks.Create(c.Request.Context(), p.ID, *req.URL)
	if err != nil {
		abort(c, err)
		return
	}
	resp := toWebhook(w)
	resp.Secret = w.Secret
	c.JSON(http.StatusCreated, resp)
}

// listWebhooks answers GET /v1/polls/{poll_id}/webhooks (no secrets).
func (h *handlers) listWebhooks(c *gin.Context) {
	p := h.ownedPoll(c)
	if p == nil {
		return
	}
	ws, err := h.webhooks.List(c.Request.Context(), p.ID)
	if err != nil {
		abort(c, err)
		return
	}
	resp := webhookListResponse{Webhooks: make([]webhookResponse, len(ws))}
	for i, w := range ws {
		resp.Webhooks[i] = toWebhook(w)
	}
	c.JSON(http.StatusOK, resp)
}

// ownedWebhook is the poll of a webhook route, owned by the caller, and
// the webhook id from the path; ok is false once an error is answered.
func (h *handlers) ownedWebhook(c *gin.Context) (p *poll.Poll, wid id.ID, ok bool) {
	if p = h.ownedPoll(c); p == nil {
		return nil, id.ID{}, false
	}
	wid, err := pathUUID(c, "webhook_id")
	if err != nil {
		abort(c, err)
		return nil, id.ID{}, false
	}
	return p, wid, true
}

// deleteWebhook answers DELETE /v1/polls/{poll_id}/webhooks/{webhook_id}.
func (h *handlers) deleteWebhook(c *gin.Context) {
	p, wid, ok := h.ownedWebhook(c)
	if !ok {
		return
	}
	if err := h.webhooks.Delete(c.Request.Context(), p.ID, wid); err != nil {
		abort(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// testWebhook answers POST /v1/polls/{poll_id}/webhooks/{webhook_id}/test:
// one webhook.test event sent now, and its delivery record.
func (h *handlers) testWebhook(c *gin.Context) {
	p, wid, ok := h.ownedWebhook(c)
	if !ok {
		return
	}
	d, err := h.webhooks.Test(c.Request.Context(), p.ID, wid)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, toDelivery(d))
}

// webhookDeliveries answers GET .../webhooks/{webhook_id}/deliveries.
func (h *handlers) webhookDeliveries(c *gin.Context) {
	p, wid, ok := h.ownedWebhook(c)
	if !ok {
		return
	}
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		abort(c, err)
		return
	}
	ds, err := h.webhooks.Deliveries(c.Request.Context(), p.ID, wid, int(limit))
	if err != nil {
		abort(c, err)
		return
	}
	resp := deliveryListResponse{Deliveries: make([]deliveryResponse, len(ds))}
	for i, d := range ds {
		resp.Deliveries[i] = toDelivery(d)
	}
	c.JSON(http.StatusOK, resp)
}
