package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
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

// Accepter takes votes on the API side.
type Accepter struct {
	cfg       Config
	producer  Producer
	rdb       *redis.Client
	votes     *vote.Service
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
func NewAccepter(cfg Config, producer Producer, rdb *redis.Client, votes *vote.Service, log *zap.Logger,
	now func() time.Time, reg prometheus.Registerer) *Accepter {
	m := &acceptMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_votes_total",
			Help: "Vote requests at the API by outcome: accepted (202), fast_duplicate (409 from Redis), fallback_sync (Kafka down, written directly), rejected (503).",
		}, []string{"outcome"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_ingest_produce_seconds",
			Help:    "Latency of producing one vote to Kafka with acks=all.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	reg.MustRegister(m.outcomes, m.produce)
	return &Accepter{cfg: cfg, producer: producer, rdb: rdb, votes: votes, log: log, now: now, m: m}
}

// Async reports whether votes go through Kafka.
func (a *Accepter) Async() bool { return a.cfg.Mode == "async" }

// Outcome is what the API answers: a 202 with the request id, or (on the
// synchronous fallback) a 200 with the stored ballot.
type Outcome struct {
	RequestID gocql.UUID
	Recorded  *vote.Ballot
}

func flagKey(pollID, voterID gocql.UUID) string {
	return "voted:" + pollID.String() + ":" + voterID.String()
}

func requestKey(pollID, voterID, requestID gocql.UUID) string {
	return "req:" + pollID.String() + ":" + voterID.String() + ":" + requestID.String()
}

// releaseFlag deletes the voter's flag only if it still holds this request.
var releaseFlag = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Accept checks the vote, rejects known duplicates from Redis, and hands it
// to Kafka; only after every in-sync replica acknowledged does it answer.
// With Kafka down it writes the ballot synchronously instead.
func (a *Accepter) Accept(ctx context.Context, p *poll.Poll, b *vote.Ballot) (Outcome, error) {
	if err := vote.CheckVoter(p, b.Anonymous, a.now()); err != nil {
		return Outcome{}, err
	}
	opts, err := vote.Choose(p, b.OptionIDs)
	if err != nil {
		return Outcome{}, err
	}
	b.OptionIDs = opts

	flagged, err := a.flag(ctx, p, b)
	if err != nil {
		return Outcome{}, err
	}
	// From here on the vote completes even if the client goes away: a
	// cancelled produce must not look like Kafka being down, and a vote
	// half-accepted must not be abandoned between its flag and its write.
	ctx = context.WithoutCancel(ctx)
	if a.now().UnixNano() >= a.kafkaDown.Load() {
		err := a.produce(ctx, b)
		if err == nil {
			a.m.outcomes.WithLabelValues("accepted").Inc()
			return Outcome{RequestID: b.RequestID}, nil
		}
		a.kafkaDown.Store(a.now().Add(a.cfg.KafkaCooldown).UnixNano())
		a.log.Warn("kafka produce failed, writing votes synchronously",
			zap.Duration("for", a.cfg.KafkaCooldown), zap.Error(err))
	}
	stored, _, err := a.votes.Record(ctx, p, b)
	if err != nil && !errors.Is(err, vote.ErrAlreadyVoted) {
		if flagged {
			releaseFlag.Run(ctx, a.rdb, []string{flagKey(b.PollID, b.VoterID)}, b.RequestID.String())
		}
		a.m.outcomes.WithLabelValues("rejected").Inc()
		return Outcome{}, err
	}
	a.m.outcomes.WithLabelValues("fallback_sync").Inc()
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Recorded: stored}, nil
}

// flag sets voted:{poll}:{voter} to the request id unless it exists. A flag
// holding another request id means the voter already voted: 409 at once. A
// flag holding this request id is a retry: it goes through again, and the
// worker recognises it by request id. With Redis down the check is skipped;
// the LWT still guarantees one vote.
func (a *Accepter) flag(ctx context.Context, p *poll.Poll, b *vote.Ballot) (bool, error) {
	ttl := time.Until(p.EndTime) + time.Hour
	ttl = min(max(ttl, time.Hour), 90*24*time.Hour)
	key := flagKey(b.PollID, b.VoterID)
	rid := b.RequestID.String()
	pipe := a.rdb.Pipeline()
	set := pipe.SetNX(ctx, key, rid, ttl)
	pipe.Set(ctx, requestKey(b.PollID, b.VoterID, b.RequestID), b.PollID.String(), a.cfg.RequestTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		a.log.Debug("redis fast path unavailable", zap.Error(err))
		return false, nil
	}
	if set.Val() {
		return true, nil
	}
	holder, err := a.rdb.Get(ctx, key).Result()
	if err != nil || holder == rid {
		return false, nil
	}
	a.m.outcomes.WithLabelValues("fast_duplicate").Inc()
	return false, vote.ErrAlreadyVoted
}

func (a *Accepter) produce(ctx context.Context, b *vote.Ballot) error {
	body, err := json.Marshal(FromBallot(b))
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
