package events

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

type capture struct {
	mu  sync.Mutex
	got []Event
}

func (c *capture) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		var ev Event
		_ = json.Unmarshal(m.Value, &ev)
		c.got = append(c.got, ev)
	}
	return nil
}
func (c *capture) Close() error { return nil }
func (c *capture) events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.got...)
}

type fakePolls struct{ p atomic.Pointer[poll.Poll] }

func (f *fakePolls) Get(context.Context, id.ID) (*poll.Poll, error) { return f.p.Load(), nil }

type fakeLive struct{ ballots atomic.Int64 }

func (f *fakeLive) LiveSince(_ context.Context, p *poll.Poll, _ time.Time) (*tally.Results, error) {
	n := f.ballots.Load()
	return &tally.Results{PollID: p.ID, TotalVotes: n, AsOf: time.Now(),
		Options: []tally.OptionResult{{OptionID: p.Options[0].ID, Votes: n}}}, nil
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A change another process already announced within the window is
// deferred to the window's end, then emitted; unchanged rounded counts
// are not emitted again; a hidden poll emits nothing.
func TestPublisherGateAndDedupe(t *testing.T) {
	now := time.Now()
	p := &poll.Poll{ID: id.New(), CreatorID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Settings: poll.Settings{ResultsVisibility: poll.ResultsAlways}, Options: []poll.Option{{ID: id.New()}}}
	c := &capture{}
	polls := &fakePolls{}
	polls.p.Store(p)
	lv := &fakeLive{}
	lv.ballots.Store(12)
	var calls atomic.Int32
	pub := NewPublisher(Config{Every: 20 * time.Millisecond}, NewEmitter(c, zap.NewNop(), nil), polls, lv,
		zap.NewNop(), time.Now, nil).WithGate(func(context.Context, id.ID, time.Duration) (time.Duration, error) {
		if calls.Add(1) == 1 {
			return 30 * time.Millisecond, nil
		}
		return 0, nil
	})
	defer pub.Close()
	pub.Changed(p.ID)
	waitFor(t, func() bool { return len(c.events()) == 1 })
	if calls.Load() < 2 {
		t.Fatalf("emitted without passing the gate (%d calls)", calls.Load())
	}
	var d ResultsChanged
	_ = json.Unmarshal(c.events()[0].Data, &d)
	if d.Counts.Ballots != 10 {
		t.Fatalf("counts %+v", d.Counts)
	}
	lv.ballots.Store(14) // still 10 rounded
	pub.Changed(p.ID)
	time.Sleep(100 * time.Millisecond)
	if n := len(c.events()); n != 1 {
		t.Fatalf("unchanged rounded counts emitted again: %d events", n)
	}
	lv.ballots.Store(15)
	pub.Changed(p.ID)
	waitFor(t, func() bool { return len(c.events()) == 2 })

	hidden := *p
	hidden.Settings.ResultsVisibility = poll.ResultsAfterClose
	polls.p.Store(&hidden)
	lv.ballots.Store(40)
	pub.Changed(p.ID)
	time.Sleep(100 * time.Millisecond)
	if n := len(c.events()); n != 2 {
		t.Fatalf("a hidden poll emitted: %d events", n)
	}
}
