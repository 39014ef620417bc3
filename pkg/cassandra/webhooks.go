package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/webhook"
)

// WebhookStore implements webhook.Store on webhooks and
// webhook_deliveries (cql/021).
type WebhookStore struct{ s gocqlx.Session }

// NewWebhookStore builds the store.
func NewWebhookStore(s gocqlx.Session) *WebhookStore { return &WebhookStore{s: s} }

var (
	insertWebhook    = newStatement(webhooksTable.Insert())
	selectWebhooks   = newStatement(webhooksTable.Select())
	deleteWebhook    = newStatement(webhooksTable.Delete())
	insertDelivery   = newStatement(webhookDeliveriesTable.Insert())
	selectDelivery   = newStatement(webhookDeliveriesTable.Get())
	selectDeliveries = newStatement(qb.Select(webhookDeliveriesTable.Name()).Columns(webhookDeliveriesTable.Metadata().Columns...).
				Where(qb.Eq("webhook_id")).LimitNamed("limit").ToCql())
)

// webhookRow is a row of webhooks.
type webhookRow struct {
	PollID    id.ID     `db:"poll_id"`
	WebhookID id.ID     `db:"webhook_id"`
	URL       string    `db:"url"`
	Secret    string    `db:"secret"`
	CreatedAt time.Time `db:"created_at"`
}

// deliveryRow is a row of webhook_deliveries.
type deliveryRow struct {
	WebhookID  id.ID     `db:"webhook_id"`
	EventID    string    `db:"event_id"`
	EventType  string    `db:"event_type"`
	Status     string    `db:"status"`
	Attempts   int       `db:"attempts"`
	StatusCode int       `db:"status_code"`
	LastError  string    `db:"last_error"`
	UpdatedAt  time.Time `db:"updated_at"`
}

func (r webhookRow) toWebhook() webhook.Webhook {
	return webhook.Webhook{PollID: r.PollID, ID: r.WebhookID, URL: r.URL, Secret: r.Secret, CreatedAt: r.CreatedAt}
}

func (r deliveryRow) toDelivery() webhook.Delivery {
	return webhook.Delivery{WebhookID: r.WebhookID, EventID: r.EventID, EventType: r.EventType, Status: r.Status,
		Attempts: r.Attempts, StatusCode: r.StatusCode, LastError: r.LastError, UpdatedAt: r.UpdatedAt}
}

// AddWebhook writes the webhook.
func (st *WebhookStore) AddWebhook(ctx context.Context, w webhook.Webhook) error {
	row := webhookRow{PollID: w.PollID, WebhookID: w.ID, URL: w.URL, Secret: w.Secret, CreatedAt: w.CreatedAt}
	if err := insertWebhook.query(ctx, st.s).BindStruct(row).ExecRelease(); err != nil {
		return apperr.Unavailable("insert webhook", err)
	}
	return nil
}

// Webhooks reads the poll's webhooks.
func (st *WebhookStore) Webhooks(ctx context.Context, pollID id.ID) ([]webhook.Webhook, error) {
	var rows []webhookRow
	if err := selectWebhooks.query(ctx, st.s).BindStruct(webhookRow{PollID: pollID}).SelectRelease(&rows); err != nil {
		return nil, apperr.Unavailable("read webhooks", err)
	}
	out := make([]webhook.Webhook, len(rows))
	for i, r := range rows {
		out[i] = r.toWebhook()
	}
	return out, nil
}

// DeleteWebhook removes the webhook.
func (st *WebhookStore) DeleteWebhook(ctx context.Context, pollID, webhookID id.ID) error {
	if err := deleteWebhook.query(ctx, st.s).BindStruct(webhookRow{PollID: pollID, WebhookID: webhookID}).ExecRelease(); err != nil {
		return apperr.Unavailable("delete webhook", err)
	}
	return nil
}

// Delivery reads one delivery record.
func (st *WebhookStore) Delivery(ctx context.Context, webhookID id.ID, eventID string) (webhook.Delivery, bool, error) {
	var row deliveryRow
	err := selectDelivery.query(ctx, st.s).BindStruct(deliveryRow{WebhookID: webhookID, EventID: eventID}).GetRelease(&row)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return webhook.Delivery{WebhookID: webhookID, EventID: eventID}, false, nil
	case err != nil:
		return webhook.Delivery{}, false, apperr.Unavailable("read webhook delivery", err)
	}
	return row.toDelivery(), true, nil
}

// SaveDelivery writes a delivery record.
func (st *WebhookStore) SaveDelivery(ctx context.Context, d webhook.Delivery) error {
	row := deliveryRow{WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		Attempts: d.Attempts, StatusCode: d.StatusCode, LastError: d.LastError, UpdatedAt: d.UpdatedAt}
	if err := insertDelivery.query(ctx, st.s).BindStruct(row).ExecRelease(); err != nil {
		return apperr.Unavailable("save webhook delivery", err)
	}
	return nil
}

// Deliveries reads up to limit delivery records of the webhook.
func (st *WebhookStore) Deliveries(ctx context.Context, webhookID id.ID, limit int) ([]webhook.Delivery, error) {
	var rows []deliveryRow
	err := selectDeliveries.query(ctx, st.s).BindMap(qb.M{"webhook_id": webhookID, "limit": limit}).SelectRelease(&rows)
	if err != nil {
		return nil, apperr.Unavailable("read webhook deliveries", err)
	}
	out := make([]webhook.Delivery, len(rows))
	for i, r := range rows {
		out[i] = r.toDelivery()
	}
	return out, nil
}
