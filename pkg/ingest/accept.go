package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/vote"
)

// Config tunes the accept side.
type Config struct {
	// Mode is "async" (accept into Kafka, answer 202) or "sync" (write
	// through to Cassandra, answer 200).
	Mode           string        `env:"MODE" envDefault:"async"`
	ProduceTimeout time.Duration `env:"PRODUCE_TIMEOUT" envDefault:"3s"`
	// KafkaCooldown is how long the API writes votes synchronously after a
	// produce failed, before it tries Kafka again.
	KafkaCooldown time.Duration `env:"KAFKA_COOLDOWN" envDefault:"5s"`
	// RequestTTL is how long a request id is remembered as accepted.
	RequestTTL time.Duration `env:"REQUEST_TTL" envDefault:"24h"`
}

// Producer is the slice of kafka.Writer the accepter uses.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Polls is what the accept side needs of polls.
type Polls interface {
	// FreezeOptions freezes the options p was read with, or returns
	// poll.ErrOptionsChanged.
	FreezeOptions(ctx context.Context, p *poll.Poll) error
}

// Accepter takes votes on the API side, in both modes: it applies the
// voting rules once, then queues the ballot (async) or records it (sync).
type Accepter struct {
	cfg       Config
	producer  Producer
	rdb       *redis.Client
	votes     *vote.Service
	polls     Polls
	log       *zap.Logger
	now       func() time.Time
	kafkaDown atomic.Int64 // unix nanos until which Kafka is skipped
	m         *acceptMetrics
}

type acceptMetrics struct {
	outcomes *prometheus.CounterVec
	produce  prometheus.Histogram
}

// NewAccepter builds the accept side and registers its metrics.
func NewAccepter(cfg Config, producer Producer, rdb *redis.Client, votes *vote.Service, polls Polls, log *zap.Logger,
	now func() time.Time, reg prometheus.Registerer) *Accepter {
	m := &acceptMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_votes_total",
			Help: "Vote requests at the API by outcome: accepted (202), fast_duplicate (409 from Redis), fallback_sync (Kafka down, written directly), recorded_sync (sync mode), replayed_after_close (a retry answered with its original outcome), rejected (503).",
		}, []string{"outcome"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_ingest_produce_seconds",
			Help:    "Latency of producing one vote to Kafka with acks=all.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	reg.MustRegister(m.outcomes, m.produce)
	return &Accepter{cfg: cfg, producer: producer, rdb: rdb, votes: votes, polls: polls, log: log, now: now, m: m}
}

// Async reports whether votes go through Kafka.
func (a *Accepter) Async() bool { return a.cfg.Mode == "async" }

// Outcome is what the API answers: a 202 with the request id, or a 200
// with the stored ballot (sync mode, the synchronous fallback, or a retry
// of a request already recorded).
type Outcome struct {
	RequestID gocql.UUID
	Recorded  *vote.Ballot
}

// The voter flag's value is the request holding it, prefixed with its
// state: pending while the ballot is being produced (a crash there must
// not lock the voter out, so it expires quickly and does not make other
// requests fail fast), queued once Kafka acknowledged it.
const (
	flagPending = "p:"
	flagQueued  = "q:"
	// flagPendingTTL bounds how long a flag whose produce never finished
	// (the API died) can stand.
	flagPendingTTL = time.Minute
)

// releaseFlag deletes the voter's flag only if it still holds this
// request, in whatever state.
var releaseFlag = redis.NewScript(`local v = redis.call("GET", KEYS[1])
if v == ARGV[1] or v == "p:" .. ARGV[1] or v == "q:" .. ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// ReleaseFlag frees a voter whose request will never produce a ballot (a
// poison message, a vote refused at apply time), so they can vote again.
func ReleaseFlag(ctx context.Context, rdb *redis.Client, pollID, voterID, requestID gocql.UUID) error {
	return releaseFlag.Run(ctx, rdb, []string{redisx.VoterFlag(pollID, voterID)}, requestID.String()).Err()
}

// Accept applies the voting rules to b on p (as read at seenAt) and queues
// or records it. Only after every in-sync replica acknowledged the ballot
// does an async accept answer; with Kafka down it records synchronously.
func (a *Accepter) Accept(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot) (Outcome, error) {
	if err := vote.CheckVoter(p, b.Anonymous, a.now()); err != nil {
		if errors.Is(err, poll.ErrNotActive) && b.IdempotencyKey != "" {
			return a.original(ctx, p, b, err)
		}
		return Outcome{}, err
	}
	opts, err := vote.Choose(p, b.OptionIDs)
	if err != nil {
		return Outcome{}, err
	}
	b.OptionIDs = opts
	// Freeze the options this vote was checked against before it can be
	// accepted: an owner replacing them afterwards is refused. With
	// Cassandra unreachable the vote is still accepted into Kafka and the
	// worker freezes them when it applies it.
	fctx, cancel := context.WithTimeout(ctx, freezeTimeout)
	err = a.polls.FreezeOptions(fctx, p)
	cancel()
	switch {
	case errors.Is(err, poll.ErrOptionsChanged):
		return Outcome{}, err
	case err != nil && !a.Async():
		return Outcome{}, err
	case err != nil:
		a.log.Warn("freeze options deferred to the worker", zap.Stringer("poll_id", p.ID), zap.Error(err))
	}
	if !a.Async() {
		return a.record(ctx, p, b, "recorded_sync", false)
	}

	flagged, err := a.flag(ctx, p, b)
	if err != nil {
		return Outcome{}, err
	}
	// From here on the vote completes even if the client goes away: a
	// cancelled produce must not look like Kafka being down, and a vote
	// half-accepted must not be abandoned between its flag and its write.
	ctx = context.WithoutCancel(ctx)
	if a.now().UnixNano() >= a.kafkaDown.Load() {
		err := a.produce(ctx, p, seenAt, b)
		if err == nil {
			a.m.outcomes.WithLabelValues("accepted").Inc()
			a.markQueued(ctx, p, b)
			return Outcome{RequestID: b.RequestID}, nil
		}
		a.kafkaDown.Store(a.now().Add(a.cfg.KafkaCooldown).UnixNano())
		a.log.Warn("kafka produce failed, writing votes synchronously",
			zap.Duration("for", a.cfg.KafkaCooldown), zap.Error(err))
	}
	return a.record(ctx, p, b, "fallback_sync", flagged)
}

// freezeTimeout bounds the options freeze on a vote's path (once per poll
// and process).
const freezeTimeout = time.Second

// record writes the ballot synchronously.
func (a *Accepter) record(ctx context.Context, p *poll.Poll, b *vote.Ballot, outcome string, flagged bool) (Outcome, error) {
	stored, _, err := a.votes.Record(ctx, p, b)
	if err != nil && !errors.Is(err, vote.ErrAlreadyVoted) {
		if flagged {
			_ = ReleaseFlag(ctx, a.rdb, b.PollID, b.VoterID, b.RequestID)
		}
		a.m.outcomes.WithLabelValues("rejected").Inc()
		return Outcome{}, err
	}
	if err != nil {
		return Outcome{}, err
	}
	a.m.outcomes.WithLabelValues(outcome).Inc()
	if a.Async() {
		a.markQueued(ctx, p, b)
	}
	return Outcome{Recorded: stored}, nil
}

// original answers a retry (same Idempotency-Key) that arrives after the
// poll closed with the outcome of the first request: the recorded ballot,
// or the accepted request still queued. Anything else gets notActive.
func (a *Accepter) original(ctx context.Context, p *poll.Poll, b *vote.Ballot, notActive error) (Outcome, error) {
	stored, err := a.votes.Mine(ctx, b.PollID, b.VoterID)
	switch {
	case err == nil && b.SameRequest(stored):
		a.m.outcomes.WithLabelValues("replayed_after_close").Inc()
		return Outcome{Recorded: stored}, nil
	case err != nil && !errors.Is(err, vote.ErrNoVote):
		return Outcome{}, err
	}
	n, err := a.rdb.Exists(ctx, redisx.AcceptedRequest(b.PollID, b.VoterID, b.RequestID)).Result()
	if err == nil && n == 1 {
		a.m.outcomes.WithLabelValues("replayed_after_close").Inc()
		return Outcome{RequestID: b.RequestID}, nil
	}
	return Outcome{}, notActive
}

// flag sets the voter's flag to this request, pending, unless a flag
// exists. A flag held by another request that Kafka acknowledged means
// the voter already voted: 409 at once. A flag held by another request
// still being produced is not proof of anything yet (that produce may
// fail): this request goes on and the conditional write decides. A flag
// holding this request is a retry: it goes through again, and the worker
// recognises it by request id. With Redis down the check is skipped; the
// conditional write still guarantees one vote.
func (a *Accepter) flag(ctx context.Context, p *poll.Poll, b *vote.Ballot) (bool, error) {
	key := redisx.VoterFlag(b.PollID, b.VoterID)
	rid := b.RequestID.String()
	pipe := a.rdb.Pipeline()
	set := pipe.SetNX(ctx, key, flagPending+rid, flagPendingTTL)
	pipe.Set(ctx, redisx.AcceptedRequest(b.PollID, b.VoterID, b.RequestID), b.PollID.String(), a.cfg.RequestTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		a.log.Debug("redis fast path unavailable", zap.Error(err))
		return false, nil
	}
	if set.Val() {
		return true, nil
	}
	holder, err := a.rdb.Get(ctx, key).Result()
	if err != nil || strings.TrimPrefix(strings.TrimPrefix(holder, flagQueued), flagPending) == rid ||
		strings.HasPrefix(holder, flagPending) {
		return false, nil
	}
	a.m.outcomes.WithLabelValues("fast_duplicate").Inc()
	return false, vote.ErrAlreadyVoted
}

// markQueued records that the voter has a request durably queued (or
// recorded): the flag becomes this request's queued one, for as long as
// the poll, unless another request's queued flag is there already. It
// replaces any pending flag, this request's or another's (which may still
// fail). It is off the answer's path: if it is lost, the pending flag
// expires and the conditional write still refuses a second vote, only
// later.
func (a *Accepter) markQueued(ctx context.Context, p *poll.Poll, b *vote.Ballot) {
	ttl := time.Until(p.EndTime) + time.Hour
	ttl = min(max(ttl, time.Hour), 90*24*time.Hour)
	key := redisx.VoterFlag(b.PollID, b.VoterID)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := markQueued.Run(ctx, a.rdb, []string{key}, flagQueued+b.RequestID.String(),
			ttl.Milliseconds()).Err(); err != nil {
			a.log.Debug("mark vote flag queued", zap.Error(err))
		}
	}()
}

// markQueued sets the queued flag unless a queued flag is there already.
var markQueued = redis.NewScript(`local v = redis.call("GET", KEYS[1])
if v and string.sub(v, 1, 2) == "q:" then return 0 end
return redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])`)

func (a *Accepter) produce(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot) error {
	msg := FromBallot(b)
	msg.PollSeenAt, msg.OptionsVersion = seenAt, p.OptionsVersion
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	err = a.producer.WriteMessages(ctx, kafka.Message{Key: b.VoterID[:], Value: body})
	a.m.produce.Observe(time.Since(start).Seconds())
	return err
}
