//go:build integration

package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/webhook"
)

// receiverDownFor is issue 23's done-when: "a receiver that is down for
// 60 s receives every event after it returns".
const receiverDownFor = 60 * time.Second

// catchUpWithin is how soon a receiver back up must have its backlog: the
// retry backoff's cap (TALLY_WEBHOOK_MAX_BACKOFF, 10 s) plus the sends.
const catchUpWithin = 20 * time.Second

// TestWebhookReceiverDownFor60s: the receiver is down for receiverDownFor
// while the poll keeps producing events (votes → results.changed, a test
// event, poll.closed, tally.frozen) and the delivery process is restarted
// meanwhile, with the production backoff settings. Within catchUpWithin of
// its return the receiver has every event id of the poll read from the
// topic, first arrivals in topic order and nothing else (no gaps, no
// strangers), each processed once (repeats counted and logged), every
// signature valid; the delivery log says delivered.
func TestWebhookReceiverDownFor60s(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Webhook = webhook.Config{AllowPrivate: true, Group: "test-webhooks-" + id.New().String(), Timeout: 2 * time.Second,
		GiveUpAfter: 10 * time.Minute} // backoffs: the defaults
	cfg.Events = events.Config{Every: 500 * time.Millisecond, MinBallots: 1, Step: 1}
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"results_visibility": "always"}, "A", "B")
	base := "/v1/polls/" + pollID + "/webhooks"

	rcv := &receiver{t: t, addr: "127.0.0.1:0", got: map[string]int{}, types: map[string]string{}}
	rcv.up()
	reg := c.Do("POST", base, owner, map[string]any{"url": "http://" + rcv.addr + "/hook"}).Must(t, http.StatusCreated)
	wid := reg.Str("webhook_id")
	rcv.mu.Lock()
	rcv.secret = reg.Str("secret")
	rcv.mu.Unlock()
	testIDs := map[string]bool{}
	sendTest := func(want string) {
		r := c.Do("POST", base+"/"+wid+"/test", owner, nil).Must(t, http.StatusOK)
		if r.Str("status") != want {
			t.Fatalf("test event: %s, want %s", r.Raw, want)
		}
		testIDs[r.Str("event_id")] = want == webhook.StatusDelivered
	}
	sendTest(webhook.StatusDelivered)

	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.RunWebhooks(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	defer func() { stop() }()
	testenv.Eventually(t, 30*time.Second, func() error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, typ := range rcv.types {
			if typ == events.TypePollCreated {
				return nil
			}
		}
		return errors.New("poll.created not delivered yet")
	})

	rcv.down()
	downAt := time.Now()
	t.Logf("receiver down for %s", receiverDownFor)
	votes := 0
	vote := func() {
		voter, _ := c.Account()
		c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_ids": []string{opts[votes%2]}}).
			Must(t, http.StatusOK)
		votes++
	}
	restarted, tested := false, false
	for time.Since(downAt) < receiverDownFor*2/3 {
		vote()
		vote()
		if !tested && time.Since(downAt) > 5*time.Second {
			// The test endpoint sends once, without retries: logged given_up.
			sendTest(webhook.StatusGivenUp)
			tested = true
		}
		if !restarted && time.Since(downAt) > receiverDownFor/3 {
			stop()
			stop = run()
			restarted = true
			t.Logf("delivery process restarted at +%s", time.Since(downAt).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	p, err := a.Polls.Get(context.Background(), mustID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tally.Reconcile(context.Background(), p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	r := c.Do("GET", base+"/"+wid+"/deliveries?limit=1000", owner, nil).Must(t, http.StatusOK)
	failing := 0
	for _, d := range r.Body["deliveries"].([]any) {
		if m := d.(map[string]any); m["status"] == webhook.StatusPending {
			failing++
		}
	}
	if failing == 0 {
		t.Fatalf("no failing delivery logged while the receiver is down: %s", r.Raw)
	}
	time.Sleep(time.Until(downAt.Add(receiverDownFor)))
	rcv.up()
	upAt := time.Now()
	defer rcv.down()
	t.Logf("receiver back after %s", upAt.Sub(downAt).Round(100*time.Millisecond))

	want := pollTopic(t, cfg.Kafka, pollID)
	types := map[string]int{}
	for _, ev := range want {
		types[ev.typ]++
	}
	t.Logf("%d event ids of the poll on the topic: %v", len(want), types)
	for _, typ := range []string{events.TypePollCreated, events.TypeResultsChanged, events.TypePollClosed, events.TypeTallyFrozen} {
		if types[typ] == 0 {
			t.Fatalf("no %s on the topic: %v", typ, types)
		}
	}
	testenv.Eventually(t, catchUpWithin-time.Since(upAt), func() error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, ev := range want {
			if rcv.got[ev.id] == 0 {
				return fmt.Errorf("event %s (%s) not received; %d of %d", ev.id, ev.typ, len(rcv.got), len(want))
			}
		}
		return nil
	})
	t.Logf("%d votes; backlog received %s after the receiver returned", votes, time.Since(upAt).Round(100*time.Millisecond))
	sendTest(webhook.StatusDelivered)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.badSig != 0 {
		t.Fatalf("%d deliveries whose signature does not verify", rcv.badSig)
	}
	// No gaps and no strangers: the ids processed are exactly the topic's
	// and the delivered test events, first arrivals in topic order.
	var order []string
	for _, evID := range rcv.processed {
		if ok, isTest := testIDs[evID]; isTest {
			if !ok {
				t.Fatalf("the test event sent while down (%s) arrived", evID)
			}
			continue
		}
		order = append(order, evID)
	}
	var topicOrder []string
	for _, ev := range want {
		topicOrder = append(topicOrder, ev.id)
	}
	if !slices.Equal(order, topicOrder) {
		t.Fatalf("processed %d ids %v\nthe topic has %d: %v", len(order), order, len(topicOrder), topicOrder)
	}
	for evID, sent := range testIDs {
		if sent && rcv.got[evID] == 0 {
			t.Fatalf("test event %s not received", evID)
		}
	}
	deliveries := 0
	for _, n := range rcv.got {
		deliveries += n
	}
	t.Logf("%d deliveries of %d ids: %d duplicates dropped by the receiver", deliveries, len(rcv.processed), rcv.dups)

	r = c.Do("GET", base+"/"+wid+"/deliveries?limit=1000", owner, nil).Must(t, http.StatusOK)
	status := map[string]string{}
	for _, d := range r.Body["deliveries"].([]any) {
		m := d.(map[string]any)
		status[m["event_id"].(string)] = m["status"].(string)
	}
	for _, ev := range want {
		if status[ev.id] != webhook.StatusDelivered {
			t.Fatalf("event %s (%s) logged %q", ev.id, ev.typ, status[ev.id])
		}
	}
}

type topicEvent struct{ id, typ string }

// pollTopic reads the whole events topic and answers the poll's event
// ids in topic order, each once (poll.closed and tally.frozen have ids
// derived from the poll, so a re-emission repeats one): everything up to
// the poll's tally.frozen and whatever follows until the topic has been
// quiet for 3 s.
func pollTopic(t *testing.T, cfg kafkax.Config, pollID string) []topicEvent {
	t.Helper()
	r := kafkax.NewReader(cfg, cfg.EventsTopic, "test-topic-reader-"+id.New().String())
	defer r.Close()
	var out []topicEvent
	seen := map[string]bool{}
	frozen := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wait := 30 * time.Second
		if frozen {
			wait = 3 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := r.FetchMessage(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			if frozen {
				return out
			}
			t.Fatalf("no tally.frozen on the topic; read %v", out)
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Subject != pollID {
			continue
		}
		if seen[ev.ID] {
			t.Logf("the topic repeats %s (%s)", ev.ID, ev.Type)
		} else {
			out = append(out, topicEvent{ev.ID, ev.Type})
		}
		seen[ev.ID] = true
		frozen = frozen || ev.Type == events.TypeTallyFrozen
	}
	t.Fatalf("the topic never went quiet; read %d events", len(out))
	return nil
}
