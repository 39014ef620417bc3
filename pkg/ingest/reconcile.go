package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

// ReconcileConfig tunes the reconciliation job.
type ReconcileConfig struct {
	// Interval is how often polls that received votes are reconciled.
	Interval time.Duration `env:"INTERVAL" envDefault:"60s"`
	// FinalizeDelay is how long after a poll closes its tally may be frozen:
	// longer than any request that passed the status check before the close
	// can take to be produced.
	FinalizeDelay time.Duration `env:"FINALIZE_DELAY" envDefault:"10s"`
	// FinalizeWait bounds how long one reconciliation waits for the votes
	// topic to drain before freezing.
	FinalizeWait time.Duration `env:"FINALIZE_WAIT" envDefault:"2m"`
	Settle       time.Duration `env:"SETTLE" envDefault:"1s"`
	Group        string        `env:"GROUP" envDefault:"tally-reconciler"`
}

// ReconcileRequest is a message on the reconciliation topic.
type ReconcileRequest struct {
	PollID gocql.UUID `json:"poll_id"`
	Reason string     `json:"reason"`
}

// Reconciler runs tally reconciliation: on demand, when a poll closes, and
// on a schedule for polls that are receiving votes.
type Reconciler struct {
	cfg      ReconcileConfig
	tally    *tally.Service
	polls    func(ctx context.Context, id gocql.UUID) (*poll.Poll, error)
	producer Producer
	// drained reports whether every vote produced so far has been written.
	drained func(ctx context.Context) (bool, error)
	log     *zap.Logger
	now     func() time.Time

	mu   sync.Mutex
	seen map[gocql.UUID]bool
	// ending holds the end times of polls that received votes here, so a
	// poll that closes by time (not by its owner) also gets its final
	// reconciliation. It lives in memory: a restart loses it, and the
	// poll's final tally is then counted from rows on demand until
	// something reconciles it.
	ending map[gocql.UUID]time.Time
}

// NewReconciler builds the job.
func NewReconciler(cfg ReconcileConfig, t *tally.Service, polls func(ctx context.Context, id gocql.UUID) (*poll.Poll, error),
	producer Producer, drained func(ctx context.Context) (bool, error), log *zap.Logger, now func() time.Time) *Reconciler {
	return &Reconciler{cfg: cfg, tally: t, polls: polls, producer: producer, drained: drained, log: log, now: now,
		seen: map[gocql.UUID]bool{}, ending: map[gocql.UUID]time.Time{}}
}

// Enqueue asks the job to reconcile a poll.
func (r *Reconciler) Enqueue(ctx context.Context, pollID gocql.UUID, reason string) error {
	body, _ := json.Marshal(ReconcileRequest{PollID: pollID, Reason: reason})
	return r.producer.WriteMessages(ctx, kafka.Message{Key: pollID[:], Value: body})
}

// PollClosed is the hook for an owner closing a poll: enqueue, or reconcile
// in the background when Kafka is unavailable.
func (r *Reconciler) PollClosed(ctx context.Context, p *poll.Poll) {
	if err := r.Enqueue(ctx, p.ID, "closed"); err != nil {
		r.log.Warn("enqueue reconciliation, running it here", zap.Stringer("poll_id", p.ID), zap.Error(err))
		go func() {
			if _, err := r.Run(context.WithoutCancel(ctx), p.ID, false, nil); err != nil {
				r.log.Warn("reconcile", zap.Stringer("poll_id", p.ID), zap.Error(err))
			}
		}()
	}
}

// Seen records that a poll received a vote (the worker's hook).
func (r *Reconciler) Seen(p *poll.Poll) {
	r.mu.Lock()
	r.seen[p.ID] = true
	r.ending[p.ID] = p.EndTime
	r.mu.Unlock()
}

// Schedule enqueues, every Interval, the polls that received votes since the
// last round, until ctx ends.
func (r *Reconciler) Schedule(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reasons := r.due()
		for id, reason := range reasons {
			if err := r.Enqueue(ctx, id, reason); err != nil {
				r.log.Warn("enqueue scheduled reconciliation", zap.Stringer("poll_id", id), zap.Error(err))
			}
		}
	}
}

// due returns the polls to reconcile this round: those that received votes
// ("scheduled") and those whose end time has passed ("closed", which waits
// for the drain and freezes the tally).
func (r *Reconciler) due() map[gocql.UUID]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[gocql.UUID]string, len(r.seen))
	for id := range r.seen {
		out[id] = "scheduled"
	}
	now := r.now()
	for id, end := range r.ending {
		if now.After(end) {
			out[id] = "closed"
			delete(r.ending, id)
		}
	}
	r.seen = map[gocql.UUID]bool{}
	return out
}

// Run reconciles one poll now. With wait, a closed poll's run waits (up to
// FinalizeWait) until its tally can be frozen as final. progress may be nil.
func (r *Reconciler) Run(ctx context.Context, pollID gocql.UUID, wait bool, progress func(done, total int, ballots int64)) (tally.Report, error) {
	p, err := r.polls(ctx, pollID)
	if err != nil {
		return tally.Report{}, err
	}
	final := r.finalizable(ctx, p)
	deadline := r.now().Add(r.cfg.FinalizeWait)
	for wait && !final && p.StatusAt(r.now()) == poll.Closed && r.now().Before(deadline) {
		select {
		case <-ctx.Done():
			return tally.Report{}, ctx.Err()
		case <-time.After(time.Second):
		}
		final = r.finalizable(ctx, p)
	}
	return r.tally.Reconcile(ctx, p, tally.ReconcileOptions{Final: final, Settle: r.cfg.Settle, Progress: progress})
}

// finalizable: the poll is closed, long enough ago that no request that saw
// it open is still being produced, and the votes topic is drained.
func (r *Reconciler) finalizable(ctx context.Context, p *poll.Poll) bool {
	since := p.ClosedSince(r.now())
	if since.IsZero() || r.now().Sub(since) < r.cfg.FinalizeDelay {
		return false
	}
	ok, err := r.drained(ctx)
	if err != nil {
		r.log.Warn("check votes topic drained", zap.Error(err))
	}
	return ok && err == nil
}

// Consume runs reconciliation requests from the topic until ctx ends,
// committing each after its run.
func (r *Reconciler) Consume(ctx context.Context, reader Fetcher) error {
	for {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("fetch reconciliation request", zap.Error(err))
			time.Sleep(time.Second)
			continue
		}
		var req ReconcileRequest
		if err := json.Unmarshal(m.Value, &req); err != nil || req.PollID == (gocql.UUID{}) {
			r.log.Error("malformed reconciliation request dropped", zap.ByteString("value", m.Value))
		} else if _, err := r.Run(ctx, req.PollID, req.Reason == "closed", nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, poll.ErrNotFound) {
				r.log.Warn("reconcile", zap.Stringer("poll_id", req.PollID), zap.Error(err))
			}
		}
		if err := reader.CommitMessages(context.WithoutCancel(ctx), m); err != nil {
			return err
		}
	}
}
