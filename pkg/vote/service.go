package vote

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/retry"
)

// Store is the system of record for ballots.
type Store interface {
	// Insert writes b with INSERT ... IF NOT EXISTS. When it did not apply
	// it returns the stored ballot. The store resolves unknown outcomes
	// (write timeouts) with a serial read, so applied is always the truth.
	Insert(ctx context.Context, b *Ballot) (applied bool, stored *Ballot, err error)
	// Get returns the voter's ballot or ErrNoVote.
	Get(ctx context.Context, pollID, voterID id.ID) (*Ballot, error)
	// Index writes ballots' rows in one partition of the per-poll index
	// (one poll, one bucket). It is idempotent.
	Index(ctx context.Context, pollID id.ID, bucket int, ballots []*Ballot) error
	// Indexed reports whether the ballot's index row exists with its vote
	// id, which (follow-ups count before they index) means it was counted.
	Indexed(ctx context.Context, b *Ballot, bucket int) (bool, error)
}

// Fence keeps follow-up writes out of a reconciliation's measurement of
// the same poll, so counters and index rows are compared at one instant.
type Fence interface {
	// Enter waits while a reconciliation measures any of the polls and
	// marks them busy until leave is called.
	Enter(ctx context.Context, polls []id.ID) (leave func(), err error)
}

// Counter adds applied ballots to the live tally: each element of ballots
// is one ballot's chosen options, all counted in one shard.
type Counter interface {
	// scores[i] are ballots[i]'s scores (nil but on score polls).
	Add(ctx context.Context, p *poll.Poll, shard int, ballots [][]id.ID, scores [][]int) error
}

// Outcome is one ballot's result from Apply, waiting for its follow-ups.
type Outcome struct {
	Poll   *poll.Poll
	Ballot *Ballot // the ballot that holds (the original one for a replay)
	// New is true when this write created the ballot.
	New bool
	// Count is true when the ballot still has to be counted: it is new, or
	// it is a replay of a ballot whose follow-ups never finished (a crash
	// between the conditional write and the index row).
	Count bool
}

// Service is the act of voting: Cast applies the rules and queues or
// records a ballot; Apply, ApplyQueued and FollowUps record it exactly
// once.
type Service struct {
	cfg     Config
	store   Store
	counter Counter
	fence   Fence
	polls   Polls
	voters  Voters
	queue   Queue // nil: every vote is recorded directly
	// flags moves the voter's flag after the admission; nil moves none.
	flags Flags
	// admission checks limits and bot signals and flags the voter; nil
	// checks nothing (tests and tools).
	admission Admission
	limits    *ratelimit.Limiter // nil: no rate limits
	log       *zap.Logger
	now       func() time.Time
	m         *metrics
	// outcomes writes one sampled line per vote outcome.
	outcomes *OutcomeLog
	ids      RequestIDs
	bots     *abuse.Detector // nil: no bot signals
	// unfinished lists direct writes whose follow-ups may be missing; nil
	// keeps no list (tests and tools).
	unfinished Unfinished
	// receipts signs ballot receipts; nil issues none (no salt, no
	// commitment).
	receipts *receipt.Keyring
	// changes and moves change ballots (change.go); nil: no change is
	// allowed.
	changes ChangeStore
	moves   CountMover
	audit   Auditor // nil: changes are not audited
}

// Auditor records system events on a poll's audit log (pkg/audit's Log).
type Auditor interface {
	Record(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any)
}

type metrics struct {
	casts      *prometheus.CounterVec
	outcomes   *prometheus.CounterVec
	lwtLatency prometheus.Histogram
	followUp   *prometheus.CounterVec
	marks      *prometheus.CounterVec
	unfinished *prometheus.CounterVec
	receipts   *prometheus.CounterVec
	changes    *prometheus.CounterVec
	settleLost prometheus.Counter
}

// Deps are the service's collaborators.
type Deps struct {
	Store   Store
	Counter Counter
	Fence   Fence
	Polls   Polls
	// Voters admits anonymous voters to invite and proof-of-work polls;
	// nil takes every caller as its own voter.
	Voters Voters
	Queue  Queue // may be nil
	// Flags is the voter's flag after the admission (queued, released)
	// and the request's accepted marker; nil when there is no queue.
	Flags Flags
	// Admission runs the vote's admission in Redis; nil admits every vote.
	Admission Admission
	// Limits counts the vote route's rate limits (Request.Limits); nil
	// counts none.
	Limits *ratelimit.Limiter
	Log    *zap.Logger
	Now    func() time.Time
	// RequestKey seals request ids (see RequestIDs); every process that
	// serves the same voters needs the same key.
	RequestKey []byte
	// Bots evaluates the bot signals of votes; nil checks none.
	Bots *abuse.Detector
	// Unfinished lists direct writes whose follow-ups may be missing, for
	// the final tally to complete; nil keeps no list.
	Unfinished Unfinished
	// Receipts signs ballot receipts (TALLY_RECEIPT_ENABLED); nil issues
	// none: ballots are recorded without a commitment.
	Receipts *receipt.Keyring
	// Changes and Moves change and revoke ballots (PUT and DELETE
	// …/votes/me, a vote after a revoke); nil refuses every change.
	Changes ChangeStore
	Moves   CountMover
	// Audit records changes and revokes, never the choice; nil records
	// none.
	Audit Auditor
}

// NewService builds the service and registers its metrics.
func NewService(cfg Config, d Deps, reg prometheus.Registerer) *Service {
	m := &metrics{
		casts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_votes_total",
			Help: "Vote requests by outcome: accepted (queued, 202), fast_duplicate (409 from the queue's flag), recorded_sync (sync mode), fallback_sync (queue down, written directly), duplicate (409 from the LWT), replayed_after_close (a retry answered with its original outcome), rate_limited (429 from the vote route's rate limits), suspicious (403 from a bot rule on a poll that rejects), undecided (503 while another request of the voter holds a pending flag), freeze_unconfirmed (503: the options freeze did not answer, so no 2xx), rejected (503).",
		}, []string{"outcome"}),
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
			Help: "Index or counter writes that failed after the ballot was recorded; they are retried until they succeed.",
		}, []string{"step"}),
	}
	m.marks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_ingest_flag_marks_total",
		Help: "What marking the voter's flag queued found after a produce, before the 202: queued (202), gone (202: the worker already released it), other_pending / other_queued (another request of the voter holds the flag: 503 / 409 instead of 202), unanswered (Redis did not answer: 202).",
	}, []string{"found"})
	m.unfinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_vote_unfinished_total",
		Help: "Direct writes (sync mode, write-through) whose follow-ups did not finish before the answer (left: an unfinished_ballots entry stays for the freeze), and entries the freeze resolved (resolved) and indexed (indexed_at_freeze).",
	}, []string{"outcome"})
	m.receipts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_receipts_issued_total",
		Help: "Ballot receipts answered, by answer: recorded (200 with receipt and salt), changed (200 to a change with the new version's receipt and salt), accepted (202 with the salt, a vote's or a change's), status (request status with the receipt), replayed (a replay: the stored ballot's receipt, no salt), retried (202 to a retry of a queued request: no salt). Signatures are tally_receipts_signed_total.",
	}, []string{"answer"})
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_vote_changes_total",
		Help: "Vote change requests (kind changed or revoked) by outcome: applied (written through), queued (async mode, 202), replayed (a retry answered from the row), conflict (409: another change first, or the ballot still being recorded), limit (409: the voter's change limit), refused (4xx: the poll's rules), failed (503).",
	}, []string{"kind", "outcome"})
	m.settleLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_vote_settle_conflicts_total",
		Help: "Follow-ups of a changed ballot that lost the conditional index move to a concurrent one and took their counter difference back.",
	})
	reg.MustRegister(m.casts, m.outcomes, m.lwtLatency, m.followUp, m.marks, m.unfinished, m.receipts, m.changes, m.settleLost)
	for _, a := range []string{"recorded", "changed", "accepted", "status", "replayed", "retried"} {
		m.receipts.WithLabelValues(a)
	}
	for _, k := range []string{KindChanged, KindRevoked} {
		for _, o := range []string{"applied", "queued", "replayed", "conflict", "limit", "refused", "failed"} {
			m.changes.WithLabelValues(k, o)
		}
	}
	for _, o := range []string{"left", "resolved", "indexed_at_freeze"} {
		m.unfinished.WithLabelValues(o)
	}
	for _, step := range []string{"counter", "index"} {
		m.followUp.WithLabelValues(step) // exported at zero, so increase() sees the first error
	}
	return &Service{cfg: cfg, store: d.Store, counter: d.Counter, fence: d.Fence, polls: d.Polls, voters: d.Voters, queue: d.Queue, flags: d.Flags,
		log: d.Log, now: d.Now, m: m, outcomes: NewOutcomeLog(d.Log, cfg.LogSample), ids: NewRequestIDs(d.RequestKey),
		bots: d.Bots, admission: d.Admission, limits: d.Limits, unfinished: d.Unfinished, receipts: d.Receipts,
		changes: d.Changes, moves: d.Moves, audit: d.Audit}
}

// followUpPolicy retries follow-ups of the synchronous path; the worker
// retries its own for as long as it takes.
var followUpPolicy = retry.Policy{Base: 50 * time.Millisecond, Max: 2 * time.Second}

// defaultFollowUpBudget is Config.FollowUpBudget when unset.
const defaultFollowUpBudget = 20 * time.Second

// Record writes b exactly once and then its follow-ups. It returns the
// ballot that holds for the voter: b itself when it applied, the original
// ballot when b is a retry of the same request (idempotency key or request
// id), and ErrAlreadyVoted when the voter voted through another request.
//
// Once the conditional write is issued the vote completes even if the
// caller goes away: a cancelled context must not leave a ballot row behind
// without its index row and counters. The follow-ups are retried for
// Config.FollowUpBudget; before the insert the voter gets an Unfinished
// entry, removed only once the ballot is indexed, so a ballot whose
// follow-ups gave up (or whose process died) is completed before its
// poll's final tally is frozen. A failed entry write fails the vote before
// anything is written (503).
func (s *Service) Record(ctx context.Context, p *poll.Poll, b *Ballot) (*Ballot, bool, error) {
	ctx = context.WithoutCancel(ctx)
	if s.unfinished != nil {
		if err := s.unfinished.Begin(ctx, b.PollID, b.VoterID); err != nil {
			return nil, false, err
		}
	}
	out, err := s.Apply(ctx, p, b)
	if err != nil {
		// ErrAlreadyVoted: the entry stays, since another request of the
		// voter (sharing it) may still be writing its follow-ups; the
		// freeze resolves it with one read.
		return out.Ballot, false, err
	}
	budget := s.cfg.FollowUpBudget
	if budget <= 0 {
		budget = defaultFollowUpBudget
	}
	fctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err = retry.Do(fctx, followUpPolicy, func(int) error { return s.FollowUps(fctx, []Outcome{out}) }, nil)
	switch {
	case err != nil:
		s.m.unfinished.WithLabelValues("left").Inc()
		s.log.Error("vote recorded but its follow-ups did not finish; the poll's final tally completes it (tally verify --repair before that)",
			zap.Stringer("poll_id", b.PollID), zap.Stringer("vote_id", out.Ballot.VoteID), zap.Error(err))
	case s.unfinished != nil:
		if err := s.unfinished.Done(ctx, b.PollID, b.VoterID); err != nil {
			// Harmless: the freeze finds the ballot indexed already.
			s.log.Warn("remove unfinished entry", zap.Stringer("poll_id", b.PollID), zap.Error(err))
		}
	}
	return out.Ballot, out.New, nil
}

// Apply is the conditional write alone; FollowUps completes it. The worker
// applies a whole batch and then writes the follow-ups of all of it at
// once, grouped by partition. A replay (the same request again, such as a
// client retrying while its first attempt is still writing) is not
// counted: the attempt that applied the ballot counts it.
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
		return Outcome{Poll: p, Ballot: b, New: true, Count: true}, nil
	case b.SameRequest(stored):
	case stored.Changes[b.RequestID] != (ChangeOutcome{}):
		// A retry of a vote cast again after a revoke.
	case stored.Revoked:
		// The voter revoked their ballot and votes again.
		return s.recast(ctx, p, b, stored)
	default:
		s.m.outcomes.WithLabelValues("duplicate").Inc()
		return Outcome{Poll: p, Ballot: stored}, ErrAlreadyVoted
	}
	s.m.outcomes.WithLabelValues("replayed").Inc()
	return Outcome{Poll: p, Ballot: stored}, nil
}

// ApplyQueued is Apply for a ballot taken from the votes topic. A replay
// there is a redelivery: the same message after the worker that first
// applied it died or lost its partition, or a client's retry queued behind
// it. The first delivery counts the ballot and then indexes it, and a
// voter's messages are applied in order, so a replay whose index row is
// missing was never counted: this delivery counts it.
func (s *Service) ApplyQueued(ctx context.Context, p *poll.Poll, b *Ballot) (Outcome, error) {
	out, err := s.Apply(ctx, p, b)
	if err != nil || out.New || versioned(out.Ballot) {
		// A changed ballot's follow-ups compare versions (settle).
		return out, err
	}
	indexed, err := s.store.Indexed(ctx, out.Ballot, Bucket(out.Ballot.VoterID, p.IndexBuckets))
	if err != nil {
		return Outcome{}, err
	}
	out.Count = !indexed
	return out, nil
}

// FollowUps writes the counters of the ballots still to be counted, then
// the index rows of every outcome: one statement per counter shard and per
// index partition. Counters go first so an index row means "counted" (see
// Apply); a voter is counted and indexed at most once per call, however
// often its ballot was redelivered into the batch. It holds the polls'
// reconciliation fence while it writes, and returns the first error: the
// caller retries the whole call with the same outs. Counted outcomes have
// their Count cleared, so a retry never counts a shard twice; index rows
// are idempotent. (A counter batch that timed out may still have applied;
// reconciliation finds and repairs that drift.)
func (s *Service) FollowUps(ctx context.Context, outs []Outcome) error {
	// The ballots are durable; finish even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	index := map[id.ID]map[int][]*Ballot{}
	counts := map[id.ID]map[int][]int{} // poll -> shard -> indexes into outs
	polls := map[id.ID]*poll.Poll{}
	seen := map[[2]id.ID]bool{}
	for _, o := range outs {
		pollID := o.Poll.ID
		if polls[pollID] == nil {
			polls[pollID] = o.Poll
			index[pollID], counts[pollID] = map[int][]*Ballot{}, map[int][]int{}
		}
	}
	// Changed ballots are settled by version (settle), after the others;
	// a voter with a changed ballot in the batch is settled alone, its
	// earlier outcomes in the batch included.
	var changed []Outcome
	settled := map[[2]id.ID]bool{}
	for i, o := range outs {
		if versioned(o.Ballot) {
			settled[[2]id.ID{o.Poll.ID, o.Ballot.VoterID}] = true
			changed = append(changed, o)
			outs[i].Count = false
		}
	}
	// Counting first: a voter whose ballot appears twice is counted once
	// if any appearance needs it.
	for i, o := range outs {
		k := [2]id.ID{o.Poll.ID, o.Ballot.VoterID}
		if settled[k] {
			outs[i].Count = false
			continue
		}
		if !o.Count {
			continue
		}
		if seen[k] {
			outs[i].Count = false
			continue
		}
		seen[k] = true
		sh := Shard(o.Ballot.VoteID, o.Poll.CounterShards)
		counts[o.Poll.ID][sh] = append(counts[o.Poll.ID][sh], i)
	}
	clear(seen)
	for _, o := range outs {
		k := [2]id.ID{o.Poll.ID, o.Ballot.VoterID}
		if !seen[k] && !settled[k] {
			seen[k] = true
			bk := Bucket(o.Ballot.VoterID, o.Poll.IndexBuckets)
			index[o.Poll.ID][bk] = append(index[o.Poll.ID][bk], o.Ballot)
		}
	}
	ids := make([]id.ID, 0, len(polls))
	for pollID := range polls {
		ids = append(ids, pollID)
	}
	leave, err := s.fence.Enter(ctx, ids)
	if err != nil {
		return err
	}
	defer leave()

	// The writes go to different partitions: issue them concurrently (a
	// batch spread over thousands of polls has about one write per vote).
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, followUpConcurrency)
		mu   sync.Mutex
		errs error
	)
	run := func(step string, n int, fn func() error) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(); err != nil {
				s.m.followUp.WithLabelValues(step).Add(float64(n))
				mu.Lock()
				errs = errors.Join(errs, err)
				mu.Unlock()
			}
		}()
	}
	for pollID, shards := range counts {
		for sh, idx := range shards {
			run("counter", len(idx), func() error {
				ballots, scores := make([][]id.ID, len(idx)), make([][]int, len(idx))
				for j, i := range idx {
					ballots[j], scores[j] = outs[i].Ballot.OptionIDs, outs[i].Ballot.Scores
				}
				if err := s.counter.Add(ctx, polls[pollID], sh, ballots, scores); err != nil {
					return err
				}
				// Counted: a retry of this call must not count them again.
				for _, i := range idx {
					outs[i].Count = false
				}
				return nil
			})
		}
	}
	wg.Wait()
	if errs != nil {
		return errs
	}
	for pollID, buckets := range index {
		for bk, ballots := range buckets {
			run("index", len(ballots), func() error { return s.store.Index(ctx, pollID, bk, ballots) })
		}
	}
	wg.Wait()
	if errs != nil || len(changed) == 0 {
		return errs
	}
	// One settle per voter, of the latest version in the batch (settle
	// leaves a version already reached alone).
	latest := map[[2]id.ID]Outcome{}
	for _, o := range changed {
		k := [2]id.ID{o.Poll.ID, o.Ballot.VoterID}
		if cur, ok := latest[k]; !ok || o.Ballot.Version > cur.Ballot.Version {
			latest[k] = o
		}
	}
	for _, o := range latest {
		run("settle", 1, func() error {
			if s.changes == nil || s.moves == nil {
				return errors.New("settle a changed ballot: no change store")
			}
			return s.settle(ctx, o.Poll, o.Ballot)
		})
	}
	wg.Wait()
	return errs
}

// followUpConcurrency bounds the follow-up writes of one batch in flight.
const followUpConcurrency = 64

// Mine returns the caller's own ballot, or ErrNoVote.
func (s *Service) Mine(ctx context.Context, pollID, voterID id.ID) (*Ballot, error) {
	return s.store.Get(ctx, pollID, voterID)
}

// HasVoted reports whether the voter has a ballot on the poll.
func (s *Service) HasVoted(ctx context.Context, pollID, voterID id.ID) (bool, error) {
	return Ballots{Store: s.store}.HasVoted(ctx, pollID, voterID)
}

// Ballots tells whether voters have ballots, from the store alone: the
// anonymous-access gates ask it, and the vote service asks them (Voters),
// so they are built before it.
type Ballots struct{ Store Store }

// HasVoted reports whether the voter has a ballot on the poll.
func (b Ballots) HasVoted(ctx context.Context, pollID, voterID id.ID) (bool, error) {
	_, err := b.Store.Get(ctx, pollID, voterID)
	if errors.Is(err, ErrNoVote) {
		return false, nil
	}
	return err == nil, err
}
