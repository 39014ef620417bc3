package events

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

func TestCoarsen(t *testing.T) {
	a, b := id.New(), id.New()
	r := &tally.Results{TotalVotes: 9, Options: []tally.OptionResult{{OptionID: a, Votes: 6}, {OptionID: b, Votes: 3}}}
	if _, ok := Coarsen(r, 10, 5); ok {
		t.Fatal("9 ballots shown with a minimum of 10")
	}
	r = &tally.Results{TotalVotes: 14, Options: []tally.OptionResult{{OptionID: a, Votes: 9}, {OptionID: b, Votes: 5}}}
	c, ok := Coarsen(r, 10, 5)
	if !ok || c.Ballots != 10 || c.Options[a.String()] != 5 || c.Options[b.String()] != 5 {
		t.Fatalf("coarsened %+v, %v", c, ok)
	}
}

func TestPublic(t *testing.T) {
	now := time.Now()
	open := func(v poll.ResultsVisibility) *poll.Poll {
		return &poll.Poll{ID: id.New(), CreatorID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), Settings: poll.Settings{ResultsVisibility: v}}
	}
	for v, want := range map[poll.ResultsVisibility]bool{poll.ResultsAlways: true, poll.ResultsAfterVote: false,
		poll.ResultsAfterClose: false, poll.ResultsOwnerOnly: false} {
		if got := Public(open(v), now); got != want {
			t.Errorf("open poll %s: public %v", v, got)
		}
		p := open(v)
		p.ClosedAt = now.Add(-time.Minute)
		p.EndTime = p.ClosedAt
		if got := Public(p, now); got != (v != poll.ResultsOwnerOnly) {
			t.Errorf("closed poll %s: public %v", v, got)
		}
	}
}

func TestEventShape(t *testing.T) {
	p := &poll.Poll{ID: id.New(), Title: "t", CreatedAt: time.Now(), Options: []poll.Option{{ID: id.New(), Text: "a"}}}
	ev, err := NewPollCreated(p)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewPollCreated(p)
	if ev.ID != again.ID || ev.ID != StableID(p.ID, TypePollCreated) {
		t.Fatal("poll.created id not stable")
	}
	b, _ := json.Marshal(ev)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %s", k, b)
		}
	}
	if m["source"] != "/tally/polls/"+p.ID.String() || m["type"] != "poll.created" {
		t.Fatalf("%s", b)
	}
	if _, ok := m["data"].(map[string]any)["creator_id"]; ok {
		t.Fatal("creator in a public event")
	}
	r1, _ := NewResultsChanged(p.ID, time.Now(), 5, Counts{})
	r2, _ := NewResultsChanged(p.ID, time.Now(), 5, Counts{})
	if r1.ID == r2.ID {
		t.Fatal("two results.changed share an id")
	}
}

type blockingWriter struct {
	mu      sync.Mutex
	release chan struct{}
	got     []kafka.Message
	fail    bool
}

func (w *blockingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return errors.New("broker down")
	}
	w.got = append(w.got, msgs...)
	return nil
}
func (w *blockingWriter) Close() error { return nil }

// A writer that hangs never holds Emit: past the queue, events are dropped.
func TestEmitNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	e := NewEmitter(w, zap.NewNop(), nil)
	ev, _ := NewPollClosed(&poll.Poll{ID: id.New(), ClosedAt: time.Now()})
	done := make(chan struct{})
	go func() {
		for range queueSize + 100 {
			e.Emit(ev)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Emit blocked on a hanging writer")
	}
	close(w.release)
	e.Close()
	e.Emit(ev) // after Close: dropped, no panic
	if len(w.got) == 0 || len(w.got) > queueSize+64 {
		t.Fatalf("wrote %d", len(w.got))
	}
	if string(w.got[0].Key) != ev.Subject {
		t.Fatalf("key %q", w.got[0].Key)
	}
}
