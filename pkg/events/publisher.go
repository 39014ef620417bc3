package events

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// Config tunes results.changed.
type Config struct {
	// Every is the least time between two results.changed of one poll
	// from one process.
	Every time.Duration `env:"EVERY" envDefault:"1s"`
	// MinBallots: a poll with fewer ballots emits no results.changed.
	MinBallots int64 `env:"MIN_BALLOTS" envDefault:"10"`
	// Step: results.changed counts are rounded down to multiples of it,
	// and one is emitted only when the rounded counts move.
	Step int64 `env:"STEP" envDefault:"5"`
}

func (c Config) withDefaults() Config {
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.MinBallots <= 0 {
		c.MinBallots = 10
	}
	if c.Step <= 0 {
		c.Step = 5
	}
	return c
}

// Polls reads a poll (the poll service).
type Polls interface {
	Get(ctx context.Context, pollID id.ID) (*poll.Poll, error)
}

// Live reads a poll's live results at least as fresh as since (the tally
// service).
type Live interface {
	LiveSince(ctx context.Context, p *poll.Poll, since time.Time) (*tally.Results, error)
}

// Gate spaces one poll's results.changed across processes: it answers 0
// when this process may emit now (and holds the poll for every), or how
// long until it may. An error lets the process emit (its own coalescing
// still bounds it).
type Gate func(ctx context.Context, pollID id.ID, every time.Duration) (time.Duration, error)

// Publisher turns Tally's happenings into public events: the poll
// lifecycle (PollCreated, PollClosed), the freeze (Frozen) and counter
// changes (Changed), applying the poll's results visibility and the
// small-poll coarsening.
type Publisher struct {
	cfg     Config
	emit    *Emitter
	polls   Polls
	live    Live
	log     *zap.Logger
	now     func() time.Time
	notices *live.Notifier
	gate    Gate
	work    chan change
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	outcome *prometheus.CounterVec

	mu   sync.Mutex
	last map[id.ID]Counts
}

type change struct {
	pollID id.ID
	at     time.Time
}

// maxRemembered bounds the per-poll memory of the last emitted counts.
const maxRemembered = 100_000

// NewPublisher builds a publisher emitting through emit and registers
// tally_events_results_total (results.changed decisions: emitted,
// hidden, small, unchanged, failed, dropped).
func NewPublisher(cfg Config, emit *Emitter, polls Polls, lv Live, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Publisher {
	o := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_events_results_total",
		Help: "Coalesced counter changes considered for results.changed, by outcome: emitted, hidden (the results are not public), small (fewer ballots than the minimum), unchanged (the rounded counts did not move), deferred (another process emitted the poll's within the window; retried at its end), failed (reading the poll or results failed), dropped (the work queue was full).",
	}, []string{"outcome"})
	for _, s := range []string{"emitted", "hidden", "small", "unchanged", "deferred", "failed", "dropped"} {
		o.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(o)
	}
	p := &Publisher{cfg: cfg.withDefaults(), emit: emit, polls: polls, live: lv, log: log, now: now,
		work: make(chan change, 1024), stop: make(chan struct{}), outcome: o, last: map[id.ID]Counts{}}
	// The live path's per-poll coalescer, on its own window: the first
	// change after a quiet spell at once, then at most one per Every.
	p.notices = live.NewNotifier(p.enqueue, p.cfg.Every, nil, log, nil)
	p.wg.Add(1)
	go p.run()
	return p
}

// WithGate spaces results.changed across processes through g (app: a
// Redis key per poll). Call before any change arrives.
func (p *Publisher) WithGate(g Gate) *Publisher {
	p.gate = g
	return p
}

// PollCreated emits poll.created (after the poll is stored).
func (p *Publisher) PollCreated(pl *poll.Poll) {
	ev, err := NewPollCreated(pl)
	if err != nil {
		p.log.Warn("build poll.created", zap.Stringer("poll_id", pl.ID), zap.Error(err))
		return
	}
	p.emit.Emit(ev)
}

// PollClosed emits poll.closed.
func (p *Publisher) PollClosed(pl *poll.Poll) {
	ev, err := NewPollClosed(pl)
	if err != nil {
		p.log.Warn("build poll.closed", zap.Stringer("poll_id", pl.ID), zap.Error(err))
		return
	}
	p.emit.Emit(ev)
}

// Frozen emits poll.closed (its stable id makes it a duplicate of the
// owner's close, when there was one, and announces a poll that ran out)
// and tally.frozen with the frozen counts, unless the poll's results are
// never public.
func (p *Publisher) Frozen(pl *poll.Poll, f tally.Frozen) {
	p.PollClosed(pl)
	var c *Counts
	if pl.Settings.Visibility() != poll.ResultsOwnerOnly {
		cc := Counts{Ballots: f.Counts.Ballots, Options: map[string]int64{}}
		for _, o := range pl.Options {
			cc.Options[o.ID.String()] = f.Counts.Options[o.ID]
		}
		c = &cc
	}
	ev, err := NewTallyFrozen(pl.ID, f.AsOf, c)
	if err != nil {
		p.log.Warn("build tally.frozen", zap.Stringer("poll_id", pl.ID), zap.Error(err))
		return
	}
	p.emit.Emit(ev)
}

// Changed records that the poll's counters changed; it never waits.
func (p *Publisher) Changed(pollID id.ID) { p.notices.Changed(pollID) }

func (p *Publisher) enqueue(_ context.Context, pollID id.ID, at time.Time) error {
	select {
	case p.work <- change{pollID, at}:
	default:
		p.outcome.WithLabelValues("dropped").Inc()
	}
	return nil
}

func (p *Publisher) run() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case c := <-p.work:
			p.results(c)
		}
	}
}

// Public reports whether anyone may see the poll's results at now.
func Public(pl *poll.Poll, now time.Time) bool {
	return tally.Visible(pl, id.ID{}, false, now, func() (bool, error) { return false, nil }) == nil
}

// Coarsen rounds the counts down to multiples of step; ok is false when
// the poll has fewer than minBallots ballots.
func Coarsen(r *tally.Results, minBallots, step int64) (Counts, bool) {
	if r.TotalVotes < minBallots {
		return Counts{}, false
	}
	c := Counts{Ballots: r.TotalVotes / step * step, Options: make(map[string]int64, len(r.Options))}
	for _, o := range r.Options {
		c.Options[o.OptionID.String()] = o.Votes / step * step
	}
	return c, true
}

func (p *Publisher) results(c change) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pl, err := p.polls.Get(ctx, c.pollID)
	if err != nil {
		p.outcome.WithLabelValues("failed").Inc()
		p.log.Debug("results.changed: read poll", zap.Stringer("poll_id", c.pollID), zap.Error(err))
		return
	}
	if !Public(pl, p.now()) {
		p.outcome.WithLabelValues("hidden").Inc()
		return
	}
	r, err := p.live.LiveSince(ctx, pl, c.at)
	if err != nil {
		p.outcome.WithLabelValues("failed").Inc()
		p.log.Debug("results.changed: read results", zap.Stringer("poll_id", c.pollID), zap.Error(err))
		return
	}
	counts, ok := Coarsen(r, p.cfg.MinBallots, p.cfg.Step)
	if !ok {
		p.outcome.WithLabelValues("small").Inc()
		return
	}
	p.mu.Lock()
	prev, seen := p.last[c.pollID]
	p.mu.Unlock()
	if seen && equal(prev, counts) {
		p.outcome.WithLabelValues("unchanged").Inc()
		return
	}
	if p.gate != nil {
		wait, err := p.gate(ctx, c.pollID, p.cfg.Every)
		if err != nil {
			p.log.Debug("results.changed gate", zap.Stringer("poll_id", c.pollID), zap.Error(err))
		} else if wait > 0 {
			// Another process emitted within the window: this change is
			// looked at again when the window ends (the notifier's own
			// window keeps later changes coalesced meanwhile).
			p.outcome.WithLabelValues("deferred").Inc()
			time.AfterFunc(wait, func() { _ = p.enqueue(context.Background(), c.pollID, c.at) })
			return
		}
	}
	p.mu.Lock()
	if len(p.last) >= maxRemembered {
		p.last = map[id.ID]Counts{}
	}
	p.last[c.pollID] = counts
	p.mu.Unlock()
	ev, err := NewResultsChanged(c.pollID, r.AsOf, p.cfg.Step, counts)
	if err != nil {
		p.outcome.WithLabelValues("failed").Inc()
		return
	}
	p.outcome.WithLabelValues("emitted").Inc()
	p.emit.Emit(ev)
}

func equal(a, b Counts) bool {
	if a.Ballots != b.Ballots || len(a.Options) != len(b.Options) {
		return false
	}
	for k, v := range a.Options {
		if w, ok := b.Options[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Close stops the results work and the emitter (which writes what it
// holds).
func (p *Publisher) Close() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.emit.Close()
	})
}
