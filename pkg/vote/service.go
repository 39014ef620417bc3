package vote

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
)

// Store is the system of record for ballots.
type Store interface {
	// Insert writes b with INSERT ... IF NOT EXISTS. When it did not apply
	// it returns the stored ballot. The store resolves unknown outcomes
	// (write timeouts) with a serial read, so applied is always the truth.
	Insert(ctx context.Context, b *Ballot) (applied bool, stored *Ballot, err error)
	// Get returns the voter's ballot or ErrNoVote.
	Get(ctx context.Context, pollID, voterID gocql.UUID) (*Ballot, error)
	// Index writes the ballot's row in the per-poll index. It is idempotent.
	Index(ctx context.Context, b *Ballot, bucket int) error
}

// Counter adds an applied ballot to the live tally.
type Counter interface {
	Add(ctx context.Context, p *poll.Poll, shard int, options []gocql.UUID) error
}

// Service records ballots exactly once.
type Service struct {
	store   Store
	counter Counter
	log     *zap.Logger
	now     func() time.Time
	m       *metrics
}

type metrics struct {
	outcomes   *prometheus.CounterVec
	lwtLatency prometheus.Histogram
	followUp   *prometheus.CounterVec
}

// NewService builds the service and registers its metrics.
func NewService(store Store, counter Counter, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Service {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_votes_total",
			Help: "Ballots written to Cassandra by outcome: recorded (new), replayed (retry of a recorded request), duplicate (voter had voted), failed.",
		}, []string{"outcome"}),
		lwtLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_vote_lwt_seconds",
			Help:    "Latency of the vote's INSERT ... IF NOT EXISTS, including outcome resolution.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		followUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_vote_followup_errors_total",
			Help: "Index or counter writes that failed after the ballot was recorded; reconciliation repairs them.",
		}, []string{"step"}),
	}
	reg.MustRegister(m.outcomes, m.lwtLatency, m.followUp)
	return &Service{store: store, counter: counter, log: log, now: now, m: m}
}

// Record writes b exactly once. It returns the ballot that holds for the
// voter: b itself when it applied, the original ballot when b is a retry of
// the same request (idempotency key or request id), and ErrAlreadyVoted when
// the voter voted through another request.
//
// After a ballot applies, Record writes its index row and counter shard.
// Those are follow-ups: a failure there is logged and counted, and the
// reconciliation job restores both from the ballot rows.
func (s *Service) Record(ctx context.Context, p *poll.Poll, b *Ballot) (*Ballot, bool, error) {
	start := time.Now()
	applied, stored, err := s.store.Insert(ctx, b)
	s.m.lwtLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.outcomes.WithLabelValues("failed").Inc()
		return nil, false, err
	}
	if !applied {
		if !b.SameRequest(stored) {
			s.m.outcomes.WithLabelValues("duplicate").Inc()
			return stored, false, ErrAlreadyVoted
		}
		// A retry of a recorded request. Re-writing the index row is
		// idempotent and heals a crash between the LWT and the index;
		// counters are not idempotent, so they are left to reconciliation.
		s.m.outcomes.WithLabelValues("replayed").Inc()
		if err := s.store.Index(ctx, stored, Bucket(stored.VoterID, p.IndexBuckets)); err != nil {
			s.m.followUp.WithLabelValues("index").Inc()
		}
		return stored, false, nil
	}
	s.m.outcomes.WithLabelValues("recorded").Inc()
	s.followUps(ctx, p, b)
	return b, true, nil
}

func (s *Service) followUps(ctx context.Context, p *poll.Poll, b *Ballot) {
	// The ballot is durable; finish the follow-ups even if the client left.
	ctx = context.WithoutCancel(ctx)
	if err := s.store.Index(ctx, b, Bucket(b.VoterID, p.IndexBuckets)); err != nil {
		s.m.followUp.WithLabelValues("index").Inc()
		s.log.Warn("index ballot", zap.Stringer("poll_id", b.PollID), zap.Stringer("vote_id", b.VoteID), zap.Error(err))
	}
	if err := s.counter.Add(ctx, p, Shard(b.VoteID, p.CounterShards), b.OptionIDs); err != nil {
		s.m.followUp.WithLabelValues("counter").Inc()
		s.log.Warn("count ballot", zap.Stringer("poll_id", b.PollID), zap.Stringer("vote_id", b.VoteID), zap.Error(err))
	}
}

// Cast is the synchronous vote: check the voter and the choice, then
// Record. It answers with the ballot that holds.
func (s *Service) Cast(ctx context.Context, p *poll.Poll, b *Ballot) (*Ballot, error) {
	if err := CheckVoter(p, b.Anonymous, s.now()); err != nil {
		return nil, err
	}
	opts, err := Choose(p, b.OptionIDs)
	if err != nil {
		return nil, err
	}
	b.OptionIDs = opts
	stored, _, err := s.Record(ctx, p, b)
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// Mine returns the caller's own ballot, or ErrNoVote.
func (s *Service) Mine(ctx context.Context, pollID, voterID gocql.UUID) (*Ballot, error) {
	return s.store.Get(ctx, pollID, voterID)
}

// HasVoted reports whether the voter has a ballot on the poll.
func (s *Service) HasVoted(ctx context.Context, pollID, voterID gocql.UUID) (bool, error) {
	_, err := s.store.Get(ctx, pollID, voterID)
	if errors.Is(err, ErrNoVote) {
		return false, nil
	}
	return err == nil, err
}
