package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
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
	// from the first to the second.
	MinBackoff time.Duration `env:"MIN_BACKOFF" envDefault:"1s"`
	MaxBackoff time.Duration `env:"MAX_BACKOFF" envDefault:"1m"`
	// GiveUpAfter: an event still undelivered this long after its first
	// attempt is recorded given_up and the endpoint's next event is sent.
	GiveUpAfter time.Duration `env:"GIVE_UP_AFTER" envDefault:"1h"`
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
}

// New builds the service and registers tally_webhook_deliveries_total.
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
	if reg != nil {
		reg.MustRegister(m)
	}
	return &Service{cfg: cfg, store: store, guard: g, client: g.Client(cfg.Timeout), log: log, now: now, m: m}
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

// Run is the delivery process: a consumer group on the events topic. Each
// event is delivered to every webhook of its poll in turn (so in order
// per endpoint), and its offset committed only when each delivery is
// recorded delivered or given_up: after a restart the group resumes at
// the first event not finished, and the log's finished rows make the
// replay skip what was done (dedupe by event id). It returns when ctx
// ends.
func (s *Service) Run(ctx context.Context, r *kafka.Reader) error {
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("webhooks: fetch event", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		var ev events.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil || ev.ID == "" {
			s.log.Warn("webhooks: not an event, skipped", zap.Int64("offset", m.Offset), zap.Error(err))
		} else if !s.dispatch(ctx, ev, m.Value) {
			return nil
		}
		for {
			err := r.CommitMessages(ctx, m)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("webhooks: commit", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return nil
			}
		}
	}
}

// dispatch delivers ev to each of its poll's webhooks; false when ctx
// ended first.
func (s *Service) dispatch(ctx context.Context, ev events.Event, body []byte) bool {
	pollID, err := id.Parse(ev.Subject)
	if err != nil {
		return true
	}
	var hooks []Webhook
	for {
		if hooks, err = s.store.Webhooks(ctx, pollID); err == nil {
			break
		}
		s.log.Warn("webhooks: read webhooks", zap.Stringer("poll_id", pollID), zap.Error(err))
		if !sleep(ctx, time.Second) {
			return false
		}
	}
	for _, w := range hooks {
		if !s.deliver(ctx, w, ev, body) {
			return false
		}
	}
	return true
}

// deliver sends ev to w until it is accepted or GiveUpAfter passes,
// recording each attempt; false when ctx ended first.
func (s *Service) deliver(ctx context.Context, w Webhook, ev events.Event, body []byte) bool {
	d, found, err := s.store.Delivery(ctx, w.ID, ev.ID)
	for err != nil {
		if !sleep(ctx, time.Second) {
			return false
		}
		d, found, err = s.store.Delivery(ctx, w.ID, ev.ID)
	}
	if found && (d.Status == StatusDelivered || d.Status == StatusGivenUp) {
		s.m.WithLabelValues("duplicate").Inc()
		return true
	}
	if !found {
		d = Delivery{WebhookID: w.ID, EventID: ev.ID, EventType: ev.Type}
	}
	start := s.now()
	backoff := s.cfg.MinBackoff
	for {
		d.Attempts++
		code, err := s.send(ctx, w, ev.ID, body)
		if ctx.Err() != nil {
			return false
		}
		d.StatusCode, d.UpdatedAt, d.LastError = code, s.now().UTC(), ""
		switch {
		case err == nil:
			d.Status = StatusDelivered
		case s.now().Sub(start) >= s.cfg.GiveUpAfter:
			d.Status, d.LastError = StatusGivenUp, err.Error()
		default:
			d.Status, d.LastError = StatusPending, err.Error()
		}
		if !s.save(ctx, d) {
			return false
		}
		switch d.Status {
		case StatusDelivered:
			s.m.WithLabelValues("delivered").Inc()
			return true
		case StatusGivenUp:
			s.m.WithLabelValues("given_up").Inc()
			s.log.Warn("webhook delivery given up", zap.Stringer("webhook_id", w.ID), zap.String("event_id", ev.ID),
				zap.Int("attempts", d.Attempts), zap.String("error", d.LastError))
			return true
		}
		// Full jitter over the doubling backoff.
		if !sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			return false
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		if _, err := s.get(ctx, w.PollID, w.ID); errors.Is(err, ErrNotFound) {
			// Deleted while its receiver failed: nothing more to send.
			d.Status, d.LastError, d.UpdatedAt = StatusGivenUp, "webhook deleted", s.now().UTC()
			s.m.WithLabelValues("given_up").Inc()
			return s.save(ctx, d)
		}
	}
}

// save records d, retrying until it is written or ctx ends.
func (s *Service) save(ctx context.Context, d Delivery) bool {
	for {
		err := s.store.SaveDelivery(ctx, d)
		if err == nil {
			return true
		}
		s.log.Warn("webhooks: record delivery", zap.Stringer("webhook_id", d.WebhookID), zap.Error(err))
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
