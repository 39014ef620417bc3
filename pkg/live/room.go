package live

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// room is one watched poll: its subscribers and the goroutine that reads
// its results. Notices arriving while a read runs are folded into one
// more read after it, so a process reads a poll at most once per notice,
// never once per subscriber.
type room struct {
	id   id.ID
	stop context.CancelFunc
	wake chan struct{}

	// Under Hub.mu.
	p     *poll.Poll
	subs  map[*Subscription]struct{}
	frame []byte // the last frame broadcast, handed to new subscribers

	pmu     sync.Mutex
	pending bool
	cause   string
	since   time.Time
	changed bool // the poll itself changed: read it again, re-ask permissions
}

// poke asks for a read of the results as of since or later; a pending
// read absorbs it (keeping the later since).
func (r *room) poke(cause string, since time.Time, pollChanged bool) {
	r.pmu.Lock()
	if !r.pending || r.cause == causeBackstop {
		r.cause = cause
	}
	r.pending = true
	if since.After(r.since) {
		r.since = since
	}
	r.changed = r.changed || pollChanged
	r.pmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *room) take() (cause string, since time.Time, changed, ok bool) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	cause, since, changed, ok = r.cause, r.since, r.changed, r.pending
	r.pending, r.changed, r.since = false, false, time.Time{}
	return
}

// run reads r's results on each poke and every Backstop until the last
// subscriber leaves.
func (h *Hub) run(ctx context.Context, r *room) {
	backstop := time.NewTicker(h.cfg.Backstop)
	defer backstop.Stop()
	recheck := time.NewTicker(h.cfg.Recheck)
	defer recheck.Stop()
	st := &roomState{}
	// The status turns closed at end_time without any notice; the timer
	// follows end_time as the owner moves it.
	ends := time.NewTimer(time.Hour)
	defer ends.Stop()
	var endAt time.Time
	follow := func() {
		h.mu.Lock()
		end := r.p.EndTime
		h.mu.Unlock()
		if end.Equal(endAt) {
			return
		}
		endAt = end
		ends.Stop()
		if left := time.Until(end); !end.IsZero() && left > 0 {
			ends.Reset(left)
		}
	}
	ends.Stop()
	follow()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			if cause, since, changed, ok := r.take(); ok {
				h.refresh(ctx, r, st, cause, since, changed)
				follow()
			}
		case <-backstop.C:
			if !st.final {
				h.refresh(ctx, r, st, causeBackstop, time.Time{}, false)
				follow()
			}
		case <-ends.C:
			endAt = time.Time{}
			h.refresh(ctx, r, st, causePollChange, time.Now(), false)
			follow()
		case <-recheck.C:
			h.mu.Lock()
			p := r.p
			h.mu.Unlock()
			h.recheck(ctx, r, p)
		}
	}
}

// roomState is what the room's goroutine remembers between reads.
type roomState struct {
	last     *tally.Results
	final    bool
	warnedAt time.Time
}

// warnEvery rate-limits a room's warn lines: while a dependency is down
// each room would log at every backstop.
const warnEvery = 30 * time.Second

// warn logs a failed read at warn at most once per warnEvery per room, at
// debug otherwise.
func (h *Hub) warn(st *roomState, msg string, fields ...zap.Field) {
	if time.Since(st.warnedAt) < warnEvery {
		h.log.Debug(msg, fields...)
		return
	}
	st.warnedAt = time.Now()
	h.log.Warn(msg, fields...)
}

// refresh reads the poll (when it changed) and its results, and broadcasts
// them when they differ from the last frame.
func (h *Hub) refresh(ctx context.Context, r *room, st *roomState, cause string, since time.Time, pollChanged bool) {
	h.mu.Lock()
	p := r.p
	h.mu.Unlock()
	read := h.polls.Cached
	if pollChanged {
		read = h.polls.Get
	}
	if fresh, err := read(ctx, p.ID); err == nil {
		if fresh.Version != p.Version {
			pollChanged = true
		}
		p = fresh
		h.mu.Lock()
		r.p = fresh
		h.mu.Unlock()
	} else if ctx.Err() == nil {
		h.warn(st, "live: read poll", zap.Stringer("poll_id", p.ID), zap.Error(err))
	}
	if pollChanged {
		h.recheck(ctx, r, p)
	}
	if st.final && cause != causeSubscribe {
		return // a frozen tally never changes
	}
	h.m.rereads.WithLabelValues(cause).Inc()
	// Never older than the last frame: a cached snapshot that a slower
	// computation wrote over a newer one would otherwise send the bars
	// back, until the next backstop sent them forward again.
	if st.last != nil && st.last.Tally == tally.Live && st.last.AsOf.After(since) {
		since = st.last.AsOf
	}
	res, err := h.read(ctx, p, since)
	if err != nil {
		if ctx.Err() == nil {
			h.warn(st, "live: read results", zap.Stringer("poll_id", p.ID), zap.String("cause", cause), zap.Error(err))
		}
		return
	}
	if cause != causeSubscribe && sameResults(st.last, res) {
		return
	}
	st.last = res
	st.final = res.Tally == tally.Final
	h.m.changes.WithLabelValues(cause).Inc()
	h.broadcast(r, encode(res))
}

// read is the poll's frozen tally once it is closed and frozen, else its
// live results.
func (h *Hub) read(ctx context.Context, p *poll.Poll, since time.Time) (*tally.Results, error) {
	if p.StatusAt(time.Now()) == poll.Closed {
		res, frozen, err := h.src.FrozenResults(ctx, p)
		if err != nil {
			return nil, err
		}
		if frozen {
			return res, nil
		}
	}
	return h.src.LiveSince(ctx, p, since)
}

// sameResults compares two results documents but for as_of.
func sameResults(a, b *tally.Results) bool {
	if a == nil || b == nil {
		return false
	}
	if a.TotalVotes != b.TotalVotes || a.Status != b.Status || a.Tally != b.Tally || len(a.Options) != len(b.Options) {
		return false
	}
	for i := range a.Options {
		if a.Options[i] != b.Options[i] {
			return false
		}
	}
	return true
}

// recheckParallel bounds the permission checks of one room run at once.
const recheckParallel = 8

// recheck asks each subscriber's permission check about p and ends the
// subscriptions it refuses.
func (h *Hub) recheck(ctx context.Context, r *room, p *poll.Poll) {
	h.mu.Lock()
	subs := make([]*Subscription, 0, len(r.subs))
	for s := range r.subs {
		if s.allowed != nil {
			subs = append(subs, s)
		}
	}
	h.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sem := make(chan struct{}, recheckParallel)
	var wg sync.WaitGroup
	for _, s := range subs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if s.allowed(ctx, p) {
				return
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if !s.done {
				h.remove(s, EndHidden)
				h.m.dropped.WithLabelValues(EndHidden).Inc()
			}
		}()
	}
	wg.Wait()
}
