package redisx

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// PollChanges carries poll change notices on Redis pub/sub (poll.Changes):
// one message per owner change on PollChanged, the poll id as payload. The
// same subscription carries the live hub's "counts changed" notices on
// CountsChanged (see Listen), so a process holds one pub/sub connection.
// Pub/sub keeps nothing: a process that is not subscribed when a notice is
// published never gets it, which is why Watch reports every subscription.
type PollChanges struct {
	rdb      *redis.Client
	log      *zap.Logger
	listener atomic.Pointer[Listener]
	// idle is how long a subscription may stay silent before it is pinged;
	// an unanswered ping for as long again ends it (a hung Redis keeps the
	// socket open and says nothing).
	idle time.Duration
	// maxBackoff caps the wait between attempts to subscribe.
	maxBackoff time.Duration
}

// NewPollChanges builds the notices on c.
func NewPollChanges(c *redis.Client, log *zap.Logger) *PollChanges {
	return &PollChanges{rdb: c, log: log, idle: time.Second, maxBackoff: 2 * time.Second}
}

// Publish sends a notice that the poll changed.
func (p *PollChanges) Publish(ctx context.Context, pollID id.ID) error {
	return p.rdb.Publish(ctx, PollChanged, pollID.String()).Err()
}

// Listener is a second receiver of the notices Watch gets (the live hub):
// Counted for each "counts changed" notice, PollChanged for each poll change
// notice (after Watch's own handler), Connected after each (re)subscription.
type Listener struct {
	Counted     func(pollID id.ID, at time.Time)
	PollChanged func(pollID id.ID)
	Connected   func()
}

// Listen sets the second receiver; it may be called before or after Watch
// starts.
func (p *PollChanges) Listen(l Listener) {
	p.listener.Store(&l)
}

// PublishCounted sends a notice that the poll's counts changed by at. The
// payload is "<poll id> <unix ms>".
func (p *PollChanges) PublishCounted(ctx context.Context, pollID id.ID, at time.Time) error {
	return p.rdb.Publish(ctx, CountsChanged, pollID.String()+" "+strconv.FormatInt(at.UnixMilli(), 10)).Err()
}

// parseCounted reads a CountsChanged payload.
func parseCounted(payload string) (id.ID, time.Time, error) {
	pid, ms, _ := strings.Cut(payload, " ")
	pollID, err := id.Parse(pid)
	if err != nil {
		return id.ID{}, time.Time{}, err
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return id.ID{}, time.Time{}, err
	}
	return pollID, time.UnixMilli(n), nil
}

// Watch subscribes to PollChanged and calls changed for each notice until
// ctx ends. connected runs once each subscription is confirmed, including
// after go-redis reconnected one by itself; a subscription that fails or
// stays silent through a ping is closed and made again, with backoff.
func (p *PollChanges) Watch(ctx context.Context, changed func(pollID id.ID), connected func()) {
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := p.session(ctx, changed, connected)
		if ctx.Err() != nil {
			return
		}
		p.log.Debug("poll change subscription lost; subscribing again", zap.Error(err))
		if time.Since(start) > 10*time.Second {
			wait = 50 * time.Millisecond // it had been working: retry soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, p.maxBackoff)
	}
}

// session is one subscription, until it fails or ctx ends.
func (p *PollChanges) session(ctx context.Context, changed func(pollID id.ID), connected func()) error {
	ps := p.rdb.Subscribe(ctx, PollChanged, CountsChanged)
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, p.idle)
		var nerr net.Error
		switch {
		case err != nil && errors.As(err, &nerr) && nerr.Timeout() && !pinged:
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		case err != nil:
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			// Once both channels are confirmed.
			if m.Kind == "subscribe" && m.Count == 2 {
				connected()
				if l := p.listener.Load(); l != nil && l.Connected != nil {
					l.Connected()
				}
			}
		case *redis.Message:
			p.deliver(m, changed)
		}
	}
}

// deliver hands one notice to its receivers.
func (p *PollChanges) deliver(m *redis.Message, changed func(pollID id.ID)) {
	l := p.listener.Load()
	if m.Channel == CountsChanged {
		pollID, at, err := parseCounted(m.Payload)
		if err != nil {
			p.log.Debug("malformed counts notice", zap.Int("bytes", len(m.Payload)))
			return
		}
		if l != nil && l.Counted != nil {
			l.Counted(pollID, at)
		}
		return
	}
	pollID, err := id.Parse(m.Payload)
	if err != nil {
		p.log.Debug("poll change notice without a poll id", zap.Int("bytes", len(m.Payload)))
		return
	}
	changed(pollID)
	if l != nil && l.PollChanged != nil {
		l.PollChanged(pollID)
	}
}
