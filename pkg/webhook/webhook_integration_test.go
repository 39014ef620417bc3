//go:build integration

package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/webhook"
)

// receiver is a webhook endpoint on 127.0.0.1 that can go down and come
// back on the same address.
type receiver struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	secret string
	got    map[string]int // event id → deliveries
	types  map[string]string
	badSig int
	srv    *http.Server
	// What a real consumer does: it processes an event id once, in
	// first-arrival order, and counts the repeats it drops.
	processed []string
	dups      int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ev events.Event
	_ = json.Unmarshal(body, &ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !webhook.Verify(r.secret, req.Header.Get(webhook.HeaderTimestamp), body, req.Header.Get(webhook.HeaderSignature)) ||
		req.Header.Get(webhook.HeaderEventID) != ev.ID {
		r.badSig++
	}
	r.got[ev.ID]++
	r.types[ev.ID] = ev.Type
	if r.got[ev.ID] == 1 {
		r.processed = append(r.processed, ev.ID)
	} else {
		r.dups++
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) up() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("listen %s: %v", r.addr, err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *receiver) down() { _ = r.srv.Close() }

// TestWebhookDeliveriesSurviveADownReceiver: a webhook registered on a
// poll receives a signed test event; then, with its receiver down and the
// delivery process restarted meanwhile, the poll's events (votes, close,
// freeze) are all delivered once the receiver is back: every event id of
// the poll on the topic at least once, each signature valid, and the
// delivery log says delivered.
func TestWebhookDeliveriesSurviveADownReceiver(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Webhook = webhook.Config{AllowPrivate: true, Group: "test-webhooks-" + id.New().String(), Timeout: 2 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, GiveUpAfter: 10 * time.Minute}
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, opts := c.Poll(owner, map[string]any{"results_visibility": "always"}, "A", "B")

	rcv := &receiver{t: t, addr: "127.0.0.1:0", got: map[string]int{}, types: map[string]string{}}
	rcv.up()
	reg := c.Do("POST", "/v1/polls/"+pollID+"/webhooks", owner, map[string]any{"url": "http://" + rcv.addr + "/hook"}).
		Must(t, http.StatusCreated)
	wid, secret := reg.Str("webhook_id"), reg.Str("secret")
	if secret == "" {
		t.Fatalf("no secret: %s", reg.Raw)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	base := "/v1/polls/" + pollID + "/webhooks"
	list := c.Do("GET", base, owner, nil).Must(t, http.StatusOK)
	if hs := list.Body["webhooks"].([]any); len(hs) != 1 || hs[0].(map[string]any)["secret"] != nil {
		t.Fatalf("list: %s", list.Raw)
	}
	other, _ := c.Account()
	if r := c.Do("GET", base, other, nil); r.Status != http.StatusForbidden {
		t.Fatalf("a stranger lists webhooks: %d", r.Status)
	}
	test := c.Do("POST", base+"/"+wid+"/test", owner, nil).Must(t, http.StatusOK)
	if test.Str("status") != "delivered" {
		t.Fatalf("test delivery: %s", test.Raw)
	}

	rcv.down()
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.RunWebhooks(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	var wg sync.WaitGroup
	for i := range 12 {
		voter, _ := c.Account()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_ids": []string{opts[i%2]}}).Must(t, http.StatusOK)
		}()
	}
	wg.Wait()
	c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
	p, err := a.Polls.Get(context.Background(), mustID(t, pollID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tally.Reconcile(context.Background(), p, tally.ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	want := topicIDs(t, cfg.Kafka, pollID)

	// Down long enough for failed attempts to be logged, and the delivery
	// process restarted while it is down.
	testenv.Eventually(t, 20*time.Second, func() error {
		r := c.Do("GET", base+"/"+wid+"/deliveries", owner, nil)
		for _, d := range r.Body["deliveries"].([]any) {
			if m := d.(map[string]any); m["status"] == "pending" && m["attempts"].(float64) >= 2 {
				return nil
			}
		}
		return fmt.Errorf("no failing delivery logged yet: %s", r.Raw)
	})
	stop()
	stop = run()
	defer stop()
	time.Sleep(time.Second)
	rcv.up()
	defer rcv.down()

	testenv.Eventually(t, 60*time.Second, func() error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for ev := range want {
			if rcv.got[ev] == 0 {
				return fmt.Errorf("event %s (%s) not received; received %d", ev, want[ev], len(rcv.got))
			}
		}
		return nil
	})
	rcv.mu.Lock()
	if rcv.badSig != 0 {
		t.Fatalf("%d deliveries with a bad signature", rcv.badSig)
	}
	rcv.mu.Unlock()
	r := c.Do("GET", base+"/"+wid+"/deliveries?limit=1000", owner, nil).Must(t, http.StatusOK)
	status := map[string]string{}
	for _, d := range r.Body["deliveries"].([]any) {
		m := d.(map[string]any)
		status[m["event_id"].(string)] = m["status"].(string)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r := c.Do("GET", base+"/"+wid+"/deliveries?limit=1000", owner, nil).Must(t, http.StatusOK)
		for _, d := range r.Body["deliveries"].([]any) {
			m := d.(map[string]any)
			status[m["event_id"].(string)] = m["status"].(string)
		}
		for ev := range want {
			if status[ev] != "delivered" {
				return fmt.Errorf("event %s logged %q", ev, status[ev])
			}
		}
		return nil
	})
	for _, typ := range []string{events.TypePollCreated, events.TypeResultsChanged, events.TypePollClosed, events.TypeTallyFrozen} {
		found := false
		for _, tt := range want {
			found = found || tt == typ
		}
		if !found {
			t.Fatalf("no %s among the delivered events %v", typ, want)
		}
	}
	c.Do("DELETE", base+"/"+wid, owner, nil).Must(t, http.StatusNoContent)
	if r := c.Do("DELETE", base+"/"+wid, owner, nil); r.Status != http.StatusNotFound {
		t.Fatalf("second delete: %d %s", r.Status, r.Raw)
	}
}

func mustID(t *testing.T, s string) id.ID {
	t.Helper()
	v, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// topicIDs reads the events topic until the poll's tally.frozen and a
// results.changed (its trailing window may end after the freeze), and
// answers the poll's event ids with their types.
func topicIDs(t *testing.T, cfg kafkax.Config, pollID string) map[string]string {
	t.Helper()
	r := kafkax.NewReader(cfg, cfg.EventsTopic, "test-topic-reader-"+id.New().String())
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, seen := map[string]string{}, map[string]bool{}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("no tally.frozen on the topic; read %v", out)
			}
			t.Fatal(err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Subject != pollID {
			continue
		}
		out[ev.ID] = ev.Type
		seen[ev.Type] = true
		if seen[events.TypeTallyFrozen] && seen[events.TypeResultsChanged] {
			return out
		}
	}
}

// TestWebhookRegistrationRefusesInternalTargets: without the operator
// setting a loopback or metadata-service target is refused 400 and not
// stored; a stranger cannot register on someone else's poll.
func TestWebhookRegistrationRefusesInternalTargets(t *testing.T) {
	cfg := testenv.Config(t)
	_, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	pollID, _ := c.Poll(owner, nil)
	base := "/v1/polls/" + pollID + "/webhooks"
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://169.254.169.254/latest", "http://[::1]/", "http://10.0.0.8/", "gopher://example.com/"} {
		r := c.Do("POST", base, owner, map[string]any{"url": u})
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
			t.Fatalf("%s: %d %s", u, r.Status, r.Raw)
		}
	}
	if r := c.Do("POST", base, owner, map[string]any{}); r.Status != http.StatusBadRequest {
		t.Fatalf("no url: %d %s", r.Status, r.Raw)
	}
	other, _ := c.Account()
	if r := c.Do("POST", base, other, map[string]any{"url": "http://203.0.113.9/"}); r.Status != http.StatusForbidden || r.Code() != "NOT_POLL_OWNER" {
		t.Fatalf("stranger: %d %s", r.Status, r.Raw)
	}
	list := c.Do("GET", base, owner, nil).Must(t, http.StatusOK)
	if hs := list.Body["webhooks"].([]any); len(hs) != 0 {
		t.Fatalf("refused targets stored: %s", list.Raw)
	}
	if r := c.Do("POST", base+"/"+id.New().String()+"/test", owner, nil); r.Status != http.StatusNotFound {
		t.Fatalf("test of an unknown webhook: %d %s", r.Status, r.Raw)
	}
}
