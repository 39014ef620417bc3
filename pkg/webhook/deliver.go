package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/id"
)

// Reader is the delivery process's consumer-group reader on the events
// topic (a kafka-go Reader).
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Run is the delivery process: a consumer group on the events topic,
// until ctx ends. Each event is queued on a lane per webhook of its poll;
// a lane delivers its webhook's events one after another (in order per
// endpoint) and lanes run side by side, so a receiver that is down or
// hangs holds only its own lane, and at most Concurrency attempts to
// answering receivers and RetryConcurrency to failing ones are in flight. An event's offset is committed once every lane
// has recorded it delivered or given_up and every earlier event of its
// partition is committed too: after a restart the group resumes at the
// first event not finished, and the log's finished rows make the replay
// skip what was done (dedupe by webhook and event id).
func (s *Service) Run(ctx context.Context, r Reader) error {
	t := newTracker()
	slots := make(chan struct{}, s.cfg.MaxPending)
	lanes := &lanes{s: s, ctx: ctx, open: map[id.ID]*lane{}}
	committed := make(chan struct{})
	go func() { defer close(committed); s.commitLoop(ctx, r, t, slots) }()
	defer func() {
		lanes.wg.Wait()
		<-committed
		// What the lanes finished before the end is committed with a fresh
		// context, so a restart replays as little as possible.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if msgs, _ := t.committable(); len(msgs) > 0 {
			if err := r.CommitMessages(cctx, msgs...); err != nil {
				s.log.Warn("webhooks: final commit", zap.Error(err))
			}
		}
		// Nothing is held any more; the next Run fetches from the commit.
		s.pending.Set(0)
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("webhooks: fetch event", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		s.pending.Inc()
		var ev events.Event
		var hooks []Webhook
		if err := json.Unmarshal(m.Value, &ev); err != nil || ev.ID == "" {
			s.log.Warn("webhooks: not an event, skipped", zap.Int64("offset", m.Offset), zap.Error(err))
		} else if hooks, err = s.hooksOf(ctx, ev); err != nil {
			return nil
		}
		e := t.add(m, len(hooks))
		for _, w := range hooks {
			lanes.enqueue(job{w: w, ev: ev, body: m.Value, done: func() { t.finish(e) }})
		}
	}
}

// hooksOf reads the webhooks of ev's poll, retrying until it can or ctx
// ends (then the error).
func (s *Service) hooksOf(ctx context.Context, ev events.Event) ([]Webhook, error) {
	pollID, err := id.Parse(ev.Subject)
	if err != nil {
		return nil, nil
	}
	for {
		hooks, err := s.store.Webhooks(ctx, pollID)
		if err == nil {
			return hooks, nil
		}
		s.log.Warn("webhooks: read webhooks", zap.Stringer("poll_id", pollID), zap.Error(err))
		if !sleep(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
}

// commitLoop commits the finished prefix of each partition whenever a
// delivery finishes, and frees those events' slots.
func (s *Service) commitLoop(ctx context.Context, r Reader, t *tracker, slots chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.ready:
		}
		msgs, n := t.committable()
		for len(msgs) > 0 {
			err := r.CommitMessages(ctx, msgs...)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("webhooks: commit", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return
			}
		}
		for range n {
			<-slots
			s.pending.Dec()
		}
	}
}

// tracker keeps the fetched events of each partition in order, with how
// many deliveries each still waits for.
type tracker struct {
	mu    sync.Mutex
	parts map[int][]*entry
	ready chan struct{}
}

type entry struct {
	msg  kafka.Message
	left int
}

func newTracker() *tracker {
	return &tracker{parts: map[int][]*entry{}, ready: make(chan struct{}, 1)}
}

// add records a fetched message waiting for n deliveries.
func (t *tracker) add(m kafka.Message, n int) *entry {
	e := &entry{msg: m, left: n}
	t.mu.Lock()
	t.parts[m.Partition] = append(t.parts[m.Partition], e)
	t.mu.Unlock()
	if n == 0 {
		t.signal()
	}
	return e
}

// finish records one of e's deliveries as finished.
func (t *tracker) finish(e *entry) {
	t.mu.Lock()
	e.left--
	t.mu.Unlock()
	t.signal()
}

func (t *tracker) signal() {
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

// committable removes each partition's finished prefix and answers the
// last message of each (what to commit) and how many were removed.
func (t *tracker) committable() ([]kafka.Message, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kafka.Message
	n := 0
	for p, q := range t.parts {
		k := 0
		for k < len(q) && q[k].left <= 0 {
			k++
		}
		if k == 0 {
			continue
		}
		out = append(out, q[k-1].msg)
		n += k
		if k == len(q) {
			delete(t.parts, p)
		} else {
			t.parts[p] = q[k:]
		}
	}
	return out, n
}

// job is one event's delivery to one webhook.
type job struct {
	w    Webhook
	ev   events.Event
	body []byte
	done func()
}

// lanes are the delivery goroutines, one per webhook with work queued;
// a lane ends when its queue is empty.
type lanes struct {
	s    *Service
	ctx  context.Context
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[id.ID]*lane
}

// lane is one webhook's queue; failing says its last attempt failed.
type lane struct {
	q       []job
	failing bool
}

func (ls *lanes) enqueue(j job) {
	ls.mu.Lock()
	l, ok := ls.open[j.w.ID]
	if !ok {
		l = &lane{}
		ls.open[j.w.ID] = l
	}
	l.q = append(l.q, j)
	ls.mu.Unlock()
	if !ok {
		ls.wg.Add(1)
		ls.s.lanesUp.Inc()
		go ls.run(j.w.ID, l)
	}
}

func (ls *lanes) run(wid id.ID, l *lane) {
	defer ls.wg.Done()
	defer ls.s.lanesUp.Dec()
	for {
		ls.mu.Lock()
		if len(l.q) == 0 || ls.ctx.Err() != nil {
			// Jobs left at the end stay uncommitted and are replayed.
			delete(ls.open, wid)
			ls.mu.Unlock()
			return
		}
		j := l.q[0]
		l.q[0] = job{}
		l.q = l.q[1:]
		ls.mu.Unlock()
		if ls.s.deliver(ls.ctx, j.w, j.ev, j.body, &l.failing) {
			j.done()
		}
	}
}

// deliver sends ev to w until it is accepted, or fails after GiveUpAfter
// has passed since the event was published, recording each attempt;
// false when ctx ended first. failing is the lane's: whether its last
// attempt failed, which picks the pool an attempt waits in.
func (s *Service) deliver(ctx context.Context, w Webhook, ev events.Event, body []byte, failing *bool) bool {
	d, found, err := s.store.Delivery(ctx, w.ID, ev.ID)
	for err != nil {
		if !sleep(ctx, time.Second) {
			return false
		}
		d, found, err = s.store.Delivery(ctx, w.ID, ev.ID)
	}
	if found && (d.Status == StatusDelivered || d.Status == StatusGivenUp) {
		s.m.WithLabelValues("duplicate").Inc()
		return true
	}
	if !found {
		d = Delivery{WebhookID: w.ID, EventID: ev.ID, EventType: ev.Type}
	}
	// The give-up clock starts at the event's publication, not at this
	// process's first attempt, so a delivery process that restarts keeps
	// the same horizon.
	start := ev.Time
	if start.IsZero() {
		start = s.now()
	}
	backoff := s.cfg.MinBackoff
	for {
		d.Attempts++
		code, err := s.attempt(ctx, w, ev.ID, body, *failing)
		if ctx.Err() != nil {
			return false
		}
		*failing = err != nil
		d.StatusCode, d.UpdatedAt, d.LastError = code, s.now().UTC(), ""
		switch {
		case err == nil:
			d.Status = StatusDelivered
		case s.now().Sub(start) >= s.cfg.GiveUpAfter:
			d.Status, d.LastError = StatusGivenUp, err.Error()
		default:
			d.Status, d.LastError = StatusPending, err.Error()
		}
		if !s.save(ctx, d) {
			return false
		}
		switch d.Status {
		case StatusDelivered:
			s.m.WithLabelValues("delivered").Inc()
			return true
		case StatusGivenUp:
			s.m.WithLabelValues("given_up").Inc()
			s.log.Warn("webhook delivery given up", zap.Stringer("webhook_id", w.ID), zap.String("event_id", ev.ID),
				zap.Int("attempts", d.Attempts), zap.String("error", d.LastError))
			return true
		}
		// Full jitter over the doubling backoff.
		if !sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			return false
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		if _, err := s.get(ctx, w.PollID, w.ID); errors.Is(err, ErrNotFound) {
			// Deleted while its receiver failed: nothing more to send.
			d.Status, d.LastError, d.UpdatedAt = StatusGivenUp, "webhook deleted", s.now().UTC()
			s.m.WithLabelValues("given_up").Inc()
			return s.save(ctx, d)
		}
	}
}

// attempt is one send in the pool of answering receivers, or of failing
// ones when retry.
func (s *Service) attempt(ctx context.Context, w Webhook, eventID string, body []byte, retry bool) (int, error) {
	pool := s.sends
	if retry {
		pool = s.retries
	}
	select {
	case pool <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.inFlight.Inc()
	defer func() { <-pool; s.inFlight.Dec() }()
	return s.send(ctx, w, eventID, body)
}

// save records d, retrying until it is written or ctx ends.
func (s *Service) save(ctx context.Context, d Delivery) bool {
	for {
		err := s.store.SaveDelivery(ctx, d)
		if err == nil {
			return true
		}
		s.log.Warn("webhooks: record delivery", zap.Stringer("webhook_id", d.WebhookID), zap.Error(err))
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
