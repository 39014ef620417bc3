//go:build integration

package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/testenv"
)

type record struct {
	key string
	ev  events.Event
}

// readAll reads the events topic from its start until done holds of what
// was read, or fails after the timeout.
func readAll(t *testing.T, cfg kafkax.Config, timeout time.Duration, done func([]record) bool) []record {
	t.Helper()
	r := kafkax.NewReader(cfg, cfg.EventsTopic, "test-events-reader-"+id.New().String())
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []record
	for !done(got) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("events read so far do not satisfy the test: %+v", got)
			}
			t.Fatal(err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("not a CloudEvent: %s: %v", m.Value, err)
		}
		ct := ""
		for _, h := range m.Headers {
			if h.Key == "content-type" {
				ct = string(h.Value)
			}
		}
		if ct != events.ContentType {
			t.Fatalf("content-type %q", ct)
		}
		got = append(got, record{string(m.Key), ev})
	}
	return got
}

func ofPoll(rs []record, pollID, typ string) []events.Event {
	var out []events.Event
	for _, r := range rs {
		if r.ev.Subject == pollID && r.ev.Type == typ {
			out = append(out, r.ev)
		}
	}
	return out
}

// TestEventsOnTheTopic: polls created, voted on and closed through the
// real API and the final reconciliation publish poll.created,
// results.changed (coarsened, public polls only), poll.closed and
// tally.frozen on the events topic, keyed by poll, as CloudEvents. The
// owner_only poll's events carry no counts, and a poll below the minimum
// ballots emits no results.changed.
func TestEventsOnTheTopic(t *testing.T) {
	cfg := testenv.Config(t)
	a, srv := testenv.Server(t, cfg)
	c := testenv.NewClient(t, srv.URL)
	owner, _ := c.Account()
	public, pubOpts := c.Poll(owner, map[string]any{"results_visibility": "always"}, "A", "B")
	hidden, hidOpts := c.Poll(owner, map[string]any{"results_visibility": "owner_only"}, "A", "B")
	small, smallOpts := c.Poll(owner, map[string]any{"results_visibility": "always"}, "A", "B")

	vote := func(pollID string, opts []string, n, toA int) {
		var wg sync.WaitGroup
		for i := range n {
			voter, _ := c.Account()
			o := opts[1]
			if i < toA {
				o = opts[0]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_ids": []string{o}}).Must(t, http.StatusOK)
			}()
		}
		wg.Wait()
	}
	vote(public, pubOpts, 12, 7)
	vote(hidden, hidOpts, 12, 7)
	vote(small, smallOpts, 3, 2)

	// The public poll's coarsened counts: 12 ballots shown as 10, 7 and 5
	// votes as 5 and 5.
	rs := readAll(t, cfg.Kafka, 30*time.Second, func(rs []record) bool {
		for _, ev := range ofPoll(rs, public, events.TypeResultsChanged) {
			var d events.ResultsChanged
			if json.Unmarshal(ev.Data, &d) == nil && d.Counts.Ballots == 10 {
				return true
			}
		}
		return false
	})
	var d events.ResultsChanged
	last := ofPoll(rs, public, events.TypeResultsChanged)
	if err := json.Unmarshal(last[len(last)-1].Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Step != 5 || d.Counts.Options[pubOpts[0]] != 5 || d.Counts.Options[pubOpts[1]] != 5 || d.PollID != public {
		t.Fatalf("results.changed data: %+v", d)
	}

	ctx := context.Background()
	for _, pid := range []string{public, hidden, small} {
		c.Do("PATCH", "/v1/polls/"+pid, owner, map[string]any{"status": "closed"}).Must(t, http.StatusOK)
		pi, err := id.Parse(pid)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Polls.Get(ctx, pi)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := a.Tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: true}); err != nil || !rep.Final {
			t.Fatalf("final reconcile %s: %+v, %v", pid, rep, err)
		}
	}
	rs = readAll(t, cfg.Kafka, 30*time.Second, func(rs []record) bool {
		for _, pid := range []string{public, hidden, small} {
			if len(ofPoll(rs, pid, events.TypeTallyFrozen)) == 0 {
				return false
			}
		}
		return true
	})

	for _, r := range rs {
		ev := r.ev
		if r.key != ev.Subject || ev.SpecVersion != "1.0" || ev.Source != "/tally/polls/"+ev.Subject ||
			ev.DataContentType != "application/json" || ev.ID == "" || ev.Time.IsZero() {
			t.Fatalf("not a well-formed event: key %s %+v", r.key, ev)
		}
	}
	for _, pid := range []string{public, hidden, small} {
		created := ofPoll(rs, pid, events.TypePollCreated)
		closed := ofPoll(rs, pid, events.TypePollClosed)
		if len(created) == 0 || len(closed) == 0 {
			t.Fatalf("poll %s: created %d, closed %d", pid, len(created), len(closed))
		}
		for _, ev := range closed {
			if ev.ID != closed[0].ID {
				t.Fatalf("poll.closed ids differ: %s, %s", ev.ID, closed[0].ID)
			}
		}
	}
	frozen := func(pid string) events.TallyFrozen {
		var f events.TallyFrozen
		if err := json.Unmarshal(ofPoll(rs, pid, events.TypeTallyFrozen)[0].Data, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := frozen(public); f.Counts == nil || f.Counts.Ballots != 12 || f.Counts.Options[pubOpts[0]] != 7 {
		t.Fatalf("public tally.frozen: %+v", f.Counts)
	}
	if f := frozen(hidden); f.Counts != nil {
		t.Fatalf("owner_only poll's tally.frozen carries counts: %+v", f.Counts)
	}
	if n := len(ofPoll(rs, hidden, events.TypeResultsChanged)); n != 0 {
		t.Fatalf("owner_only poll emitted %d results.changed", n)
	}
	if n := len(ofPoll(rs, small, events.TypeResultsChanged)); n != 0 {
		t.Fatalf("a 3-ballot poll emitted %d results.changed", n)
	}
	for _, ev := range ofPoll(rs, public, events.TypeResultsChanged) {
		var d events.ResultsChanged
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Counts.Ballots < 10 || d.Counts.Ballots%5 != 0 {
			t.Fatalf("results.changed not coarsened: %s", ev.Data)
		}
	}
}
