package redisx

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// PollChanges carries poll change notices on Redis pub/sub (poll.Changes):
// one message per owner change on PollChanged, the poll id as payload.
// Pub/sub keeps nothing: a process that is not subscribed when a notice is
// published never gets it, which is why Watch reports every subscription.
type PollChanges struct {
	rdb *redis.Client
	log *zap.Logger
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
	ps := p.rdb.Subscribe(ctx, PollChanged)
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
			if m.Kind == "subscribe" {
				connected()
			}
		case *redis.Message:
			pollID, err := id.Parse(m.Payload)
			if err != nil {
				p.log.Debug("poll change notice without a poll id", zap.Int("bytes", len(m.Payload)))
				continue
			}
			changed(pollID)
		}
	}
}
