package vote

import (
	"context"
	"errors"
	"sync"
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
	// Index writes ballots' rows in one partition of the per-poll index
	// (one poll, one bucket). It is idempotent.
	Index(ctx context.Context, pollID gocql.UUID, bucket int, ballots []*Ballot) error
}

// Counter adds applied ballots to the live tally: each element of ballots
// is one ballot's chosen options, all counted in one shard.
type Counter interface {
	Add(ctx context.Context, p *poll.Poll, shard int, ballots [][]gocql.UUID) error
}

// Outcome is one ballot's result from Apply, waiting for its follow-ups.
type Outcome struct {
	Poll   *poll.Poll
	Ballot *Ballot // the ballot that holds (the original one for a replay)
	// New is true when this write created the ballot: it must be counted.
	// A replay (same request seen again) is re-indexed but not counted.
	New bool
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

// Record writes b exactly once and then its follow-ups. It returns the
// ballot that holds for the voter: b itself when it applied, the original
// ballot when b is a retry of the same request (idempotency key or request
// id), and ErrAlreadyVoted when the voter voted through another request.
func (s *Service) Record(ctx context.Context, p *poll.Poll, b *Ballot) (*Ballot, bool, error) {
	out, err := s.Apply(ctx, p, b)
	if err != nil {
		return out.Ballot, false, err
	}
	s.FollowUps(ctx, []Outcome{out})
	return out.Ballot, out.New, nil
}

// Apply is the conditional write alone; FollowUps completes it. The worker
// applies a whole batch and then writes the follow-ups of all of it at
// once, grouped by partition.
func (s *Service) Apply(ctx context.Context, p *poll.Poll, b *Ballot) (Outcome, error) {
	start := time.Now()
	applied, stored, err := s.store.Insert(ctx, b)
	s.m.lwtLatency.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		s.m.outcomes.WithLabelValues("failed").Inc()
		return Outcome{}, err
	case applied:
		s.m.outcomes.WithLabelValues("recorded").Inc()
		return Outcome{Poll: p, Ballot: b, New: true}, nil
	case !b.SameRequest(stored):
		s.m.outcomes.WithLabelValues("duplicate").Inc()
		return Outcome{Poll: p, Ballot: stored}, ErrAlreadyVoted
	}
	s.m.outcomes.WithLabelValues("replayed").Inc()
	return Outcome{Poll: p, Ballot: stored}, nil
}

// FollowUps writes the index rows of every outcome and counts the new
// ballots, one statement per index partition and per counter shard.
// Re-writing an index row is idempotent and heals a crash between the LWT
// and the index; counters are not idempotent, so replays are not counted.
// A failure here never un-records a ballot: it is counted in
// tally_vote_followup_errors_total, logged, and repaired by reconciliation
// from the ballot rows.
func (s *Service) FollowUps(ctx context.Context, outs []Outcome) {
	// The ballots are durable; finish even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	index := map[gocql.UUID]map[int][]*Ballot{}
	counts := map[gocql.UUID]map[int][][]gocql.UUID{}
	polls := map[gocql.UUID]*poll.Poll{}
	indexed := map[[2]gocql.UUID]bool{}
	for _, o := range outs {
		id := o.Poll.ID
		polls[id] = o.Poll
		if index[id] == nil {
			index[id], counts[id] = map[int][]*Ballot{}, map[int][][]gocql.UUID{}
		}
		if o.New {
			sh := Shard(o.Ballot.VoteID, o.Poll.CounterShards)
			counts[id][sh] = append(counts[id][sh], o.Ballot.OptionIDs)
		}
		// A redelivered vote can meet its original in one batch: index once.
		if k := [2]gocql.UUID{id, o.Ballot.VoterID}; !indexed[k] {
			indexed[k] = true
			bk := Bucket(o.Ballot.VoterID, o.Poll.IndexBuckets)
			index[id][bk] = append(index[id][bk], o.Ballot)
		}
	}
	// The writes go to different partitions: issue them concurrently (a
	// batch spread over thousands of polls has about one write per vote).
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, followUpConcurrency)
	)
	run := func(fn func()) {
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer func() { <-sem; wg.Done() }(); fn() }()
	}
	for id, buckets := range index {
		for bk, ballots := range buckets {
			run(func() {
				if err := s.store.Index(ctx, id, bk, ballots); err != nil {
					s.m.followUp.WithLabelValues("index").Add(float64(len(ballots)))
					s.log.Warn("index ballots", zap.Stringer("poll_id", id), zap.Int("ballots", len(ballots)), zap.Error(err))
				}
			})
		}
		for sh, ballots := range counts[id] {
			run(func() {
				if err := s.counter.Add(ctx, polls[id], sh, ballots); err != nil {
					s.m.followUp.WithLabelValues("counter").Add(float64(len(ballots)))
					s.log.Warn("count ballots", zap.Stringer("poll_id", id), zap.Int("ballots", len(ballots)), zap.Error(err))
				}
			})
		}
	}
	wg.Wait()
}

// followUpConcurrency bounds the follow-up writes of one batch in flight.
const followUpConcurrency = 64

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
