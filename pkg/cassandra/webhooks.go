package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/webhook"
)

// WebhookStore implements webhook.Store on webhooks and
// webhook_deliveries (cql/021).
type WebhookStore struct{ s gocqlx.Session }

// NewWebhookStore builds the store.
func NewWebhookStore(s gocqlx.Session) *WebhookStore { return &WebhookStore{s: s} }

const (
	cqlInsertWebhook  = `INSERT INTO webhooks (poll_id, webhook_id, url, secret, created_at) VALUES (?, ?, ?, ?, ?)`
	cqlSelectWebhooks = `SELECT webhook_id, url, secret, created_at FROM webhooks WHERE poll_id = ?`
	cqlDeleteWebhook  = `DELETE FROM webhooks WHERE poll_id = ? AND webhook_id = ?`
	cqlSaveDelivery   = `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, status, attempts, status_code, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	cqlSelectDelivery = `SELECT event_type, status, attempts, status_code, last_error, updated_at FROM webhook_deliveries WHERE webhook_id = ? AND event_id = ?`
	cqlDeliveries     = `SELECT event_id, event_type, status, attempts, status_code, last_error, updated_at FROM webhook_deliveries WHERE webhook_id = ? LIMIT ?`
)

func (st *WebhookStore) exec(ctx context.Context, what, cql string, args ...any) error {
	if err := st.s.Session.Query(cql, args...).WithContext(ctx).Exec(); err != nil {
		return apperr.Unavailable(what, err)
	}
	return nil
}

// AddWebhook writes the webhook.
func (st *WebhookStore) AddWebhook(ctx context.Context, w webhook.Webhook) error {
	return st.exec(ctx, "insert webhook", cqlInsertWebhook, w.PollID, w.ID, w.URL, w.Secret, w.CreatedAt)
}

// Webhooks reads the poll's webhooks.
func (st *WebhookStore) Webhooks(ctx context.Context, pollID id.ID) ([]webhook.Webhook, error) {
	it := st.s.Session.Query(cqlSelectWebhooks, pollID).WithContext(ctx).Iter()
	var out []webhook.Webhook
	var w webhook.Webhook
	for it.Scan(&w.ID, &w.URL, &w.Secret, &w.CreatedAt) {
		w.PollID = pollID
		out = append(out, w)
	}
	if err := it.Close(); err != nil {
		return nil, apperr.Unavailable("read webhooks", err)
	}
	return out, nil
}

// DeleteWebhook removes the webhook.
func (st *WebhookStore) DeleteWebhook(ctx context.Context, pollID, webhookID id.ID) error {
	return st.exec(ctx, "delete webhook", cqlDeleteWebhook, pollID, webhookID)
}

// Delivery reads one delivery record.
func (st *WebhookStore) Delivery(ctx context.Context, webhookID id.ID, eventID string) (webhook.Delivery, bool, error) {
	d := webhook.Delivery{WebhookID: webhookID, EventID: eventID}
	err := st.s.Session.Query(cqlSelectDelivery, webhookID, eventID).WithContext(ctx).
		Scan(&d.EventType, &d.Status, &d.Attempts, &d.StatusCode, &d.LastError, &d.UpdatedAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return d, false, nil
	}
	if err != nil {
		return d, false, apperr.Unavailable("read webhook delivery", err)
	}
	return d, true, nil
}

// SaveDelivery writes a delivery record.
func (st *WebhookStore) SaveDelivery(ctx context.Context, d webhook.Delivery) error {
	at := d.UpdatedAt
	if at.IsZero() {
		at = time.Now().UTC()
	}
	return st.exec(ctx, "save webhook delivery", cqlSaveDelivery, d.WebhookID, d.EventID, d.EventType, d.Status,
		d.Attempts, d.StatusCode, d.LastError, at)
}

// Deliveries reads up to limit delivery records of the webhook.
func (st *WebhookStore) Deliveries(ctx context.Context, webhookID id.ID, limit int) ([]webhook.Delivery, error) {
	it := st.s.Session.Query(cqlDeliveries, webhookID, limit).WithContext(ctx).Iter()
	var out []webhook.Delivery
	d := webhook.Delivery{WebhookID: webhookID}
	for it.Scan(&d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.StatusCode, &d.LastError, &d.UpdatedAt) {
		out = append(out, d)
	}
	if err := it.Close(); err != nil {
		return nil, apperr.Unavailable("read webhook deliveries", err)
	}
	return out, nil
}
