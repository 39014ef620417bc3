// Package webhook delivers the public events (pkg/events) to the
// endpoints a poll's owner registers: signed (HMAC-SHA256 over
// "timestamp.body"), retried with exponential backoff, at least once and
// in order per endpoint, from a consumer group on the events topic that
// commits an event only once every endpoint's delivery is recorded as
// delivered or given up. Targets are guarded against server-side request
// forgery at registration and at dial time.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// Webhook is a registered endpoint of a poll.
type Webhook struct {
	PollID    id.ID
	ID        id.ID
	URL       string
	Secret    string
	CreatedAt time.Time
}

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusGivenUp   = "given_up"
)

// Delivery is one event's delivery to one webhook, as last recorded.
type Delivery struct {
	WebhookID  id.ID
	EventID    string
	EventType  string
	Status     string
	Attempts   int
	StatusCode int
	LastError  string
	UpdatedAt  time.Time
}

// Store keeps webhooks and their delivery log (pkg/cassandra).
type Store interface {
	AddWebhook(ctx context.Context, w Webhook) error
	Webhooks(ctx context.Context, pollID id.ID) ([]Webhook, error)
	DeleteWebhook(ctx context.Context, pollID, webhookID id.ID) error
	Delivery(ctx context.Context, webhookID id.ID, eventID string) (Delivery, bool, error)
	SaveDelivery(ctx context.Context, d Delivery) error
	Deliveries(ctx context.Context, webhookID id.ID, limit int) ([]Delivery, error)
}

// Header names of a delivery.
const (
	HeaderSignature = "X-Tally-Signature"
	HeaderTimestamp = "X-Tally-Timestamp"
	HeaderEventID   = "X-Tally-Event-Id"
)

// Sign is the X-Tally-Signature value of a body sent at timestamp (unix
// seconds, as in X-Tally-Timestamp): "sha256=" and the hex HMAC-SHA256
// under the secret of "timestamp.body".
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is Sign's for the body, in constant
// time (what a receiver does).
func Verify(secret, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// maxURL bounds a target URL's length.
const maxURL = 2048

// parseTarget checks a target's form: an absolute http(s) URL with a
// host, no user info.
func parseTarget(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > maxURL {
		return nil, apperr.Invalid("url", "must be an http or https URL of at most %d characters", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		strings.ContainsAny(raw, " \t\r\n") {
		return nil, apperr.Invalid("url", "must be an absolute http or https URL with a host and no user info")
	}
	return u, nil
}
