// Package live fans results out to WebSocket and Server-Sent Events
// subscribers. The process that counts a ballot publishes a coalesced
// "counts changed" notice (Notifier); every process watching the poll
// re-reads its results once per notice, however many subscribers it holds,
// and hands all of them the same encoded frame. Notices are lossy, so each
// watched poll is also re-read on a slow backstop.
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

// Source reads results.
type Source interface {
	// LiveSince reads live results as of since or later.
	LiveSince(ctx context.Context, p *poll.Poll, since time.Time) (*tally.Results, error)
	// FrozenResults reads a closed poll's frozen final tally, if frozen.
	FrozenResults(ctx context.Context, p *poll.Poll) (*tally.Results, bool, error)
}

// Polls reads poll metadata: Cached through the process's view, Get from
// the system of record (after a change notice, when the view may still be
// the old one).
type Polls interface {
	Cached(ctx context.Context, id id.ID) (*poll.Poll, error)
	Get(ctx context.Context, id id.ID) (*poll.Poll, error)
}

// Frame is what a subscriber receives: the full results document.
type Frame struct {
	Type string `json:"type"`
	*tally.Results
}

// Config tunes the hub.
type Config struct {
	// Backstop is how often each watched poll is re-read without a
	// notice: the bound on how late a lost notice leaves a change.
	Backstop time.Duration
	// Recheck is how often each subscriber's permission is asked again
	// (it is also asked at every change of the poll).
	Recheck time.Duration
}

// Transports label the subscribers.
const (
	WebSocket = "ws"
	SSE       = "sse"
)

// Why the hub ended a subscription.
const (
	EndSlow     = "slow"     // it left MaxMissed frames in a row untaken
	EndHidden   = "hidden"   // its permission check said no
	EndShutdown = "shutdown" // the hub was closed
)

// MaxMissed is how many frames in a row a subscriber may leave untaken
// before the hub drops it: its connection is stuck writing to a client that
// does not read. The hub itself never waits for a subscriber.
const MaxMissed = 3

// Why a poll's results were re-read (metric label).
const (
	causeNotice     = "notice"
	causeBackstop   = "backstop"
	causeSubscribe  = "subscribe"
	causePollChange = "poll_change"
	causeResync     = "resync"
)

// Hub tracks subscribers per poll.
type Hub struct {
	cfg   Config
	src   Source
	polls Polls
	log   *zap.Logger
	m     hubMetrics

	mu     sync.Mutex
	rooms  map[id.ID]*room
	closed bool
}

// NewHub builds a hub and registers its metrics.
func NewHub(cfg Config, src Source, polls Polls, log *zap.Logger, reg prometheus.Registerer) *Hub {
	if cfg.Backstop <= 0 {
		cfg.Backstop = 5 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 5 * time.Second
	}
	return &Hub{cfg: cfg, src: src, polls: polls, log: log, m: newHubMetrics(reg), rooms: map[id.ID]*room{}}
}

// Subscription is one subscriber's stream of encoded frames.
type Subscription struct {
	hub       *Hub
	room      *room
	ch        chan []byte
	transport string
	allowed   func(context.Context, *poll.Poll) bool
	missed    int
	reason    string // set (under hub.mu) before ch is closed
	done      bool
}

// Frames delivers encoded frames; it is closed when the hub ends the
// subscription (see Reason). It holds one frame: a slow reader misses
// intermediate frames rather than slowing the others.
func (s *Subscription) Frames() <-chan []byte { return s.ch }

// Reason says why the hub ended the subscription (EndSlow, EndHidden,
// EndShutdown); valid once Frames is closed.
func (s *Subscription) Reason() string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.reason
}

// Close ends the subscription; it is idempotent.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if !s.done {
		s.hub.remove(s, "")
	}
}

// Subscribe adds a subscriber to p's results on transport. It receives the
// current results at once (the poll's last frame, or the first read of a
// newly watched poll), then each change. allowed (nil: always) is asked
// again whenever the poll changes and every Recheck; once it answers false
// the subscription ends with EndHidden. It must not block for long.
func (h *Hub) Subscribe(p *poll.Poll, transport string, allowed func(context.Context, *poll.Poll) bool) *Subscription {
	s := &Subscription{hub: h, ch: make(chan []byte, 1), transport: transport, allowed: allowed}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.done, s.reason = true, EndShutdown
		close(s.ch)
		return s
	}
	r, ok := h.rooms[p.ID]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		r = &room{id: p.ID, p: p, subs: map[*Subscription]struct{}{}, stop: cancel, wake: make(chan struct{}, 1)}
		h.rooms[p.ID] = r
		r.poke(causeSubscribe, time.Time{}, false)
		go h.run(ctx, r)
	}
	s.room = r
	r.subs[s] = struct{}{}
	h.m.subscribers.WithLabelValues(transport).Inc()
	if r.frame != nil {
		s.ch <- r.frame
		h.m.frames.WithLabelValues(transport).Inc()
	} else if ok {
		r.poke(causeSubscribe, time.Time{}, false)
	}
	return s
}

// remove ends one subscription; h.mu is held. reason "" is the
// subscriber's own Close (its channel is left open).
func (h *Hub) remove(s *Subscription, reason string) {
	s.done = true
	r := s.room
	delete(r.subs, s)
	h.m.subscribers.WithLabelValues(s.transport).Dec()
	if reason != "" {
		s.reason = reason
		close(s.ch)
	}
	if len(r.subs) == 0 {
		r.stop()
		if h.rooms[r.id] == r {
			delete(h.rooms, r.id)
		}
	}
}

// Counted handles a "counts changed" notice: the watched poll is re-read
// as of at or later.
func (h *Hub) Counted(pollID id.ID, at time.Time) {
	h.m.received.WithLabelValues("counts").Inc()
	h.poke(pollID, causeNotice, at, false)
}

// PollChanged handles a poll change notice: the poll is read again from
// the system of record, its subscribers' permissions are asked again and
// its results are re-read (a close shows at once).
func (h *Hub) PollChanged(pollID id.ID) {
	h.m.received.WithLabelValues("poll").Inc()
	h.poke(pollID, causePollChange, time.Now(), true)
}

// Resync handles a (re)established notice subscription: notices may have
// been lost meanwhile, so every watched poll's results are read again
// (through the results cache: a process watching thousands of polls does
// not send them all to Cassandra at once; the poll views resync
// themselves, and the backstop follows).
func (h *Hub) Resync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rooms {
		r.poke(causeResync, time.Time{}, false)
	}
}

func (h *Hub) poke(pollID id.ID, cause string, since time.Time, pollChanged bool) {
	h.mu.Lock()
	r := h.rooms[pollID]
	h.mu.Unlock()
	if r != nil {
		r.poke(cause, since, pollChanged)
	}
}

// Close ends every subscription with EndShutdown (the server is shutting
// down) and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, r := range h.rooms {
		for s := range r.subs {
			h.remove(s, EndShutdown)
		}
	}
}

// encode builds the frame of res.
func encode(res *tally.Results) []byte {
	b, _ := json.Marshal(Frame{Type: "results", Results: res})
	return b
}

// broadcast hands frame to every subscriber of r and keeps it as the
// frame new subscribers get first.
func (h *Hub) broadcast(r *room, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.frame = frame
	for s := range r.subs {
		select {
		case s.ch <- frame:
			s.missed = 0
			h.m.frames.WithLabelValues(s.transport).Inc()
			continue
		default:
		}
		if s.missed++; s.missed >= MaxMissed {
			h.remove(s, EndSlow)
			h.m.dropped.WithLabelValues(EndSlow).Inc()
			continue
		}
		// Replace the stale frame the subscriber has not read yet. Only
		// broadcast sends, under h.mu, so after the drain there is room.
		select {
		case <-s.ch:
		default:
		}
		s.ch <- frame
		h.m.frames.WithLabelValues(s.transport).Inc()
	}
}
