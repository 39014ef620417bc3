package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

type memStore struct {
	mu    sync.Mutex
	hooks map[id.ID][]Webhook
	dels  map[string]Delivery
}

func newMemStore() *memStore {
	return &memStore{hooks: map[id.ID][]Webhook{}, dels: map[string]Delivery{}}
}

func (m *memStore) AddWebhook(_ context.Context, w Webhook) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks[w.PollID] = append(m.hooks[w.PollID], w)
	return nil
}

func (m *memStore) Webhooks(_ context.Context, pollID id.ID) ([]Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Webhook(nil), m.hooks[pollID]...), nil
}

func (m *memStore) DeleteWebhook(_ context.Context, pollID, wid id.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keep []Webhook
	for _, w := range m.hooks[pollID] {
		if w.ID != wid {
			keep = append(keep, w)
		}
	}
	m.hooks[pollID] = keep
	return nil
}

func (m *memStore) Delivery(_ context.Context, wid id.ID, ev string) (Delivery, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dels[wid.String()+ev]
	return d, ok, nil
}

func (m *memStore) SaveDelivery(_ context.Context, d Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dels[d.WebhookID.String()+d.EventID] = d
	return nil
}

func (m *memStore) Deliveries(context.Context, id.ID, int) ([]Delivery, error) { return nil, nil }

func TestDeliverRetriesThenDedupes(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	st := newMemStore()
	s := New(Config{AllowPrivate: true, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, st, zap.NewNop(), time.Now, nil)
	pollID := id.New()
	w, err := s.Create(context.Background(), pollID, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := events.NewPollClosed(closedPoll(pollID))
	body, _ := json.Marshal(ev)
	if !s.deliver(context.Background(), w, ev, body, new(bool)) {
		t.Fatal("deliver stopped")
	}
	d, _, _ := st.Delivery(context.Background(), w.ID, ev.ID)
	if d.Status != StatusDelivered || d.Attempts != 3 || calls.Load() != 3 {
		t.Fatalf("delivery %+v after %d calls", d, calls.Load())
	}
	// Replayed (a restart before the commit): skipped.
	s.deliver(context.Background(), w, ev, body, new(bool))
	if calls.Load() != 3 {
		t.Fatalf("a delivered event was sent again: %d calls", calls.Load())
	}
}

func TestDeliverStopsForADeletedWebhook(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	st := newMemStore()
	s := New(Config{AllowPrivate: true, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, st, zap.NewNop(), time.Now, nil)
	pollID := id.New()
	w, _ := s.Create(context.Background(), pollID, srv.URL)
	ev, _ := events.NewPollClosed(closedPoll(pollID))
	body, _ := json.Marshal(ev)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = s.Delete(context.Background(), pollID, w.ID)
	}()
	done := make(chan struct{})
	go func() { s.deliver(context.Background(), w, ev, body, new(bool)); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("delivery to a deleted webhook kept retrying")
	}
	d, _, _ := st.Delivery(context.Background(), w.ID, ev.ID)
	if d.Status != StatusGivenUp || d.LastError != "webhook deleted" {
		t.Fatalf("%+v", d)
	}
}

func closedPoll(pollID id.ID) *poll.Poll { return &poll.Poll{ID: pollID, ClosedAt: time.Now()} }

// TestDeliverGivesUpByTheEventsAge: the give-up clock is the event's
// publication, so an event replayed after the horizon (a restart long
// after it) is given up at its first failed attempt, not retried for
// another GiveUpAfter.
func TestDeliverGivesUpByTheEventsAge(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	st := newMemStore()
	s := New(Config{AllowPrivate: true, GiveUpAfter: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		st, zap.NewNop(), time.Now, nil)
	pollID := id.New()
	w, _ := s.Create(context.Background(), pollID, srv.URL)
	for _, tc := range []struct {
		name    string
		age     time.Duration
		status  string
		attempt int32
	}{
		{"past the horizon", 2 * time.Hour, StatusGivenUp, 1},
		{"within it", time.Minute, StatusPending, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			ev, _ := events.NewPollClosed(closedPoll(id.New()))
			ev.Subject, ev.Time = pollID.String(), time.Now().Add(-tc.age)
			body, _ := json.Marshal(ev)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.deliver(ctx, w, ev, body, new(bool)) }()
			// Wait for the row to say it (a given-up delivery also ends).
			deadline := time.Now().Add(5 * time.Second)
			var d Delivery
			for time.Now().Before(deadline) {
				if d, _, _ = st.Delivery(context.Background(), w.ID, ev.ID); d.Status == tc.status && int32(d.Attempts) >= tc.attempt {
					break
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			if d.Status != tc.status || int32(d.Attempts) < tc.attempt || (tc.status == StatusGivenUp && calls.Load() != 1) {
				t.Fatalf("%+v after %d calls", d, calls.Load())
			}
		})
	}
}
