package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
)

// Config tunes webhooks (TALLY_WEBHOOK_*).
type Config struct {
	// AllowPrivate lets targets resolve to loopback, link-local, private
	// and unspecified addresses (tests, private deployments).
	AllowPrivate bool `env:"ALLOW_PRIVATE" envDefault:"false"`
	// Group is the delivery process's consumer group on the events topic.
	Group string `env:"GROUP" envDefault:"tally-webhooks"`
	// Timeout bounds one delivery attempt (dial to response).
	Timeout time.Duration `env:"TIMEOUT" envDefault:"10s"`
	// MinBackoff and MaxBackoff bound the wait between attempts, doubling
	// from the first to the second. The cap is also how long a receiver
	// that is back up can wait for its backlog to start (10 s: see
	// docs/architecture.md, Webhooks).
	MinBackoff time.Duration `env:"MIN_BACKOFF" envDefault:"1s"`
	MaxBackoff time.Duration `env:"MAX_BACKOFF" envDefault:"10s"`
	// GiveUpAfter: an event still undelivered this long after it was
	// published is recorded given_up after its next failed attempt, and
	// the endpoint's next event is sent.
	GiveUpAfter time.Duration `env:"GIVE_UP_AFTER" envDefault:"1h"`
	// Concurrency bounds the delivery attempts in flight at once to
	// receivers whose last attempt did not fail; RetryConcurrency bounds
	// the retries of failing ones in a pool of their own, so receivers
	// that are down or hang cannot take every slot: a hanging receiver
	// holds a Concurrency slot once, for at most Timeout, and only retry
	// slots after that.
	Concurrency      int `env:"CONCURRENCY" envDefault:"32"`
	RetryConcurrency int `env:"RETRY_CONCURRENCY" envDefault:"8"`
	// MaxPending bounds the events fetched from the topic and not yet
	// finished for every webhook (committed); past it the delivery process
	// stops fetching until the oldest finish.
	MaxPending int `env:"MAX_PENDING" envDefault:"10000"`
	// MaxPerPoll bounds a poll's webhooks.
	MaxPerPoll int `env:"MAX_PER_POLL" envDefault:"5"`
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = "tally-webhooks"
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = time.Hour
	}
	if c.MaxPerPoll <= 0 {
		c.MaxPerPoll = 5
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 32
	}
	if c.RetryConcurrency <= 0 {
		c.RetryConcurrency = 8
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 10000
	}
	return c
}

// ErrNotFound: no such webhook on the poll.
var ErrNotFound = apperr.New(apperr.CodeNotFound, "no such webhook on this poll")

// Service registers webhooks and delivers events to them.
type Service struct {
	cfg    Config
	store  Store
	guard  Guard
	client *http.Client
	log    *zap.Logger
	now    func() time.Time
	m      *prometheus.CounterVec
	// sends and retries are the delivery process's semaphores of attempts
	// in flight (Concurrency, RetryConcurrency).
	sends, retries             chan struct{}
	inFlight, pending, lanesUp prometheus.Gauge
}

// New builds the service and registers tally_webhook_deliveries_total,
// tally_webhook_in_flight, tally_webhook_pending_events and
// tally_webhook_lanes.
func New(cfg Config, store Store, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Service {
	cfg = cfg.withDefaults()
	g := Guard{AllowPrivate: cfg.AllowPrivate}
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_webhook_deliveries_total",
		Help: "Webhook delivery attempts and outcomes: attempt_ok, attempt_failed, delivered, given_up, duplicate (an event already delivered or given up, skipped).",
	}, []string{"result"})
	for _, r := range []string{"attempt_ok", "attempt_failed", "delivered", "given_up", "duplicate"} {
		m.WithLabelValues(r)
	}
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_webhook_in_flight",
		Help: "Webhook delivery attempts in flight (at most TALLY_WEBHOOK_CONCURRENCY + TALLY_WEBHOOK_RETRY_CONCURRENCY)."})
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_webhook_pending_events",
		Help: "Events fetched by the delivery process and not yet finished for every webhook (at most TALLY_WEBHOOK_MAX_PENDING)."})
	lanes := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_webhook_lanes",
		Help: "Webhooks with deliveries queued or being retried (one delivery goroutine each)."})
	if reg != nil {
		reg.MustRegister(m, inFlight, pending, lanes)
	}
	return &Service{cfg: cfg, store: store, guard: g, client: g.Client(cfg.Timeout), log: log, now: now, m: m,
		sends: make(chan struct{}, cfg.Concurrency), retries: make(chan struct{}, cfg.RetryConcurrency), inFlight: inFlight, pending: pending, lanesUp: lanes}
}

// Create registers target for the poll and returns the webhook with its
// secret (shown once).
func (s *Service) Create(ctx context.Context, pollID id.ID, target string) (Webhook, error) {
	if err := s.guard.CheckURL(ctx, target); err != nil {
		return Webhook{}, err
	}
	existing, err := s.store.Webhooks(ctx, pollID)
	if err != nil {
		return Webhook{}, err
	}
	if len(existing) >= s.cfg.MaxPerPoll {
		return Webhook{}, apperr.Invalid("url", "a poll has at most %d webhooks", s.cfg.MaxPerPoll)
	}
	w := Webhook{PollID: pollID, ID: id.New(), URL: target, Secret: newSecret(), CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := s.store.AddWebhook(ctx, w); err != nil {
		return Webhook{}, err
	}
	s.log.Info("webhook registered", zap.Stringer("poll_id", pollID), zap.Stringer("webhook_id", w.ID))
	return w, nil
}

// List is the poll's webhooks (secrets are the caller's to withhold).
func (s *Service) List(ctx context.Context, pollID id.ID) ([]Webhook, error) {
	return s.store.Webhooks(ctx, pollID)
}

func (s *Service) get(ctx context.Context, pollID, webhookID id.ID) (Webhook, error) {
	ws, err := s.store.Webhooks(ctx, pollID)
	if err != nil {
		return Webhook{}, err
	}
	for _, w := range ws {
		if w.ID == webhookID {
			return w, nil
		}
	}
	return Webhook{}, ErrNotFound
}

// Delete removes the webhook; its delivery log stays.
func (s *Service) Delete(ctx context.Context, pollID, webhookID id.ID) error {
	if _, err := s.get(ctx, pollID, webhookID); err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(ctx, pollID, webhookID); err != nil {
		return err
	}
	s.log.Info("webhook deleted", zap.Stringer("poll_id", pollID), zap.Stringer("webhook_id", webhookID))
	return nil
}

// Deliveries is the webhook's delivery log.
func (s *Service) Deliveries(ctx context.Context, pollID, webhookID id.ID, limit int) ([]Delivery, error) {
	if _, err := s.get(ctx, pollID, webhookID); err != nil {
		return nil, err
	}
	return s.store.Deliveries(ctx, webhookID, limit)
}

// TypeTest is the type of the event the test endpoint sends.
const TypeTest = "webhook.test"

// Test sends one webhook.test event now, once (no retries), records it in
// the delivery log and returns the record.
func (s *Service) Test(ctx context.Context, pollID, webhookID id.ID) (Delivery, error) {
	w, err := s.get(ctx, pollID, webhookID)
	if err != nil {
		return Delivery{}, err
	}
	data, _ := json.Marshal(map[string]string{"poll_id": pollID.String(), "webhook_id": webhookID.String()})
	ev := events.Event{SpecVersion: events.SpecVersion, ID: uuid.NewString(), Source: events.Source(pollID), Type: TypeTest,
		Subject: pollID.String(), Time: s.now().UTC(), DataContentType: "application/json", Data: data}
	body, _ := json.Marshal(ev)
	d := Delivery{WebhookID: w.ID, EventID: ev.ID, EventType: ev.Type, Attempts: 1}
	d.StatusCode, err = s.send(ctx, w, ev.ID, body)
	d.Status, d.UpdatedAt = StatusDelivered, s.now().UTC()
	if err != nil {
		d.Status, d.LastError = StatusGivenUp, err.Error()
	}
	if err := s.store.SaveDelivery(ctx, d); err != nil {
		return d, err
	}
	return d, nil
}

// send POSTs the event once; a non-2xx answer is an error.
func (s *Service) send(ctx context.Context, w Webhook, eventID string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", events.ContentType)
	req.Header.Set("User-Agent", "Tally-Webhooks/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		s.m.WithLabelValues("attempt_failed").Inc()
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.m.WithLabelValues("attempt_failed").Inc()
		return resp.StatusCode, fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	s.m.WithLabelValues("attempt_ok").Inc()
	return resp.StatusCode, nil
}
