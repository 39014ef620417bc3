// Package live fans results out to WebSocket subscribers. One goroutine per
// watched poll reads the (cached) live results once per interval and pushes
// a frame to every subscriber only when they changed, so a viral poll with
// many watchers costs one read per interval, not one per watcher.
package live

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// Source reads live results.
type Source interface {
	Results(ctx context.Context, p *poll.Poll, mode tally.Mode) (*tally.Results, error)
}

// Frame is what a subscriber receives: the full results document.
type Frame struct {
	Type string `json:"type"`
	*tally.Results
}

// Hub tracks subscribers per poll.
type Hub struct {
	src      Source
	lookup   func(ctx context.Context, id id.ID) (*poll.Poll, error)
	interval time.Duration
	log      *zap.Logger
	gauge    prometheus.Gauge
	dropped  prometheus.Counter

	mu    sync.Mutex
	polls map[id.ID]*room
}

type room struct {
	p    *poll.Poll
	subs map[chan []byte]*subscriber
	stop context.CancelFunc
}

// subscriber counts the frames a socket missed in a row because it had not
// taken the previous one yet.
type subscriber struct {
	missed int
}

// MaxMissed is how many frames in a row a subscriber may leave untaken
// before the hub drops it: its socket is stuck writing to a client that
// does not read. The hub itself never waits for a subscriber.
const MaxMissed = 3

// NewHub builds a hub and registers its gauge. polls re-reads a watched
// poll each interval (through the metadata cache), so a close shows up.
func NewHub(src Source, polls func(ctx context.Context, id id.ID) (*poll.Poll, error), interval time.Duration,
	log *zap.Logger, reg prometheus.Registerer) *Hub {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tally_live_subscribers", Help: "Open live-results WebSocket subscriptions.",
	})
	d := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_live_hub_dropped_total", Help: "Live subscribers dropped by the hub after missing MaxMissed frames in a row.",
	})
	reg.MustRegister(g, d)
	return &Hub{src: src, lookup: polls, interval: interval, log: log, gauge: g, dropped: d, polls: map[id.ID]*room{}}
}

// Subscribe returns a channel of encoded frames for p and a function that
// ends the subscription. Slow subscribers miss intermediate frames rather
// than slowing the others: each channel holds one frame. A subscriber that
// misses MaxMissed frames in a row is dropped: its channel is closed.
func (h *Hub) Subscribe(p *poll.Poll) (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	r, ok := h.polls[p.ID]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		r = &room{p: p, subs: map[chan []byte]*subscriber{}, stop: cancel}
		h.polls[p.ID] = r
		go h.run(ctx, r)
	}
	r.subs[ch] = &subscriber{}
	h.mu.Unlock()
	h.gauge.Inc()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := r.subs[ch]; ok {
			h.remove(r, ch)
		}
	}
}

// remove ends one subscription; h.mu is held.
func (h *Hub) remove(r *room, ch chan []byte) {
	delete(r.subs, ch)
	h.gauge.Dec()
	if len(r.subs) == 0 {
		r.stop()
		if h.polls[r.p.ID] == r {
			delete(h.polls, r.p.ID)
		}
	}
}

func (h *Hub) run(ctx context.Context, r *room) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	var last []byte
	p := r.p
	for {
		if fresh, err := h.lookup(ctx, p.ID); err == nil {
			p = fresh
		}
		res, err := h.src.Results(ctx, p, tally.Live)
		if err == nil {
			frame, _ := json.Marshal(Frame{Type: "results", Results: res})
			if !sameCounts(last, frame) {
				last = frame
				h.broadcast(r, frame)
			}
		} else if ctx.Err() == nil {
			h.log.Warn("live results", zap.Stringer("poll_id", p.ID), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sameCounts compares frames ignoring as_of, which changes every read.
func sameCounts(a, b []byte) bool {
	if a == nil {
		return false
	}
	var x, y tally.Results
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	if x.TotalVotes != y.TotalVotes || x.Status != y.Status || len(x.Options) != len(y.Options) {
		return false
	}
	for i := range x.Options {
		if x.Options[i] != y.Options[i] {
			return false
		}
	}
	return true
}

func (h *Hub) broadcast(r *room, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch, sub := range r.subs {
		select {
		case ch <- frame:
			sub.missed = 0
			continue
		default:
		}
		if sub.missed++; sub.missed >= MaxMissed {
			close(ch)
			h.remove(r, ch)
			h.dropped.Inc()
			continue
		}
		// Replace the stale frame the subscriber has not read yet. Only
		// broadcast sends, under h.mu, so after the drain there is room.
		select {
		case <-ch:
		default:
		}
		ch <- frame
	}
}
