package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/reqid"
	"github.com/tally-vote/tally/pkg/vote"
)

// Config tunes the queue side of the API.
type Config struct {
	ProduceTimeout time.Duration `env:"PRODUCE_TIMEOUT" envDefault:"3s"`
	// KafkaCooldown is how long the queue reports itself unavailable after
	// a produce failed (votes are recorded directly meanwhile), before it
	// tries Kafka again.
	KafkaCooldown time.Duration `env:"KAFKA_COOLDOWN" envDefault:"5s"`
	// KafkaDownAfter is how long Kafka must have acknowledged nothing
	// before a timed-out produce counts as Kafka down (write through)
	// rather than Kafka slow (shed with 503 OVERLOADED): a slow Kafka keeps
	// acknowledging, a hung one does not.
	KafkaDownAfter time.Duration `env:"KAFKA_DOWN_AFTER" envDefault:"5s"`
	// RequestTTL is how long a request id is remembered as accepted.
	RequestTTL time.Duration `env:"REQUEST_TTL" envDefault:"24h"`
}

// Producer is the slice of kafka.Writer the queue uses.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Queue implements vote.Queue on Redis (the voter flag and the
// accepted-request marker) and Kafka (the votes topic).
type Queue struct {
	cfg       Config
	producer  Producer
	rdb       *redis.Client
	log       *zap.Logger
	now       func() time.Time
	kafkaDown atomic.Int64 // unix nanos until which Kafka is skipped
	// producedAt is unix nanos of the last acknowledged produce (or of the
	// queue's start): see slow.
	producedAt atomic.Int64
	produced   prometheus.Histogram
	shed       prometheus.Counter
	// marks feeds markLoop; marking is true while it runs.
	marks   chan mark
	marking atomic.Bool
}

// New builds the queue and registers its metric.
func New(cfg Config, producer Producer, rdb *redis.Client, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Queue {
	produced := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tally_ingest_produce_seconds",
		Help:    "Latency of producing one vote to Kafka with acks=all.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	shed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_ingest_shed_total",
		Help: "Votes refused with 503 OVERLOADED because Kafka was acknowledging too slowly (not down).",
	})
	reg.MustRegister(produced, shed)
	q := &Queue{cfg: cfg, producer: producer, rdb: rdb, log: log, now: now, produced: produced, shed: shed,
		marks: make(chan mark, 8*markBatch)}
	q.producedAt.Store(now().UnixNano())
	return q
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

// Enqueue flags the voter and produces the ballot; it returns only after
// every in-sync replica acknowledged it. With Kafka failing it returns
// vote.ErrQueueUnavailable (and keeps doing so for KafkaCooldown).
func (q *Queue) Enqueue(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot, bots *abuse.Check) error {
	if q.now().UnixNano() < q.kafkaDown.Load() {
		return vote.ErrQueueUnavailable
	}
	if err := q.flag(ctx, b, bots); err != nil {
		return err
	}
	// From here on the ballot is produced even if the client goes away: a
	// cancelled produce must not look like Kafka being down.
	ctx = context.WithoutCancel(ctx)
	if err := q.produce(ctx, p, seenAt, b); err != nil {
		if q.slow(err) {
			// Writing through would add LWTs to the busiest part of the
			// system; the client retries later instead.
			_ = ReleaseFlag(ctx, q.rdb, b.PollID, b.VoterID, b.RequestID)
			q.shed.Inc()
			return apperr.ErrOverloaded
		}
		q.kafkaDown.Store(q.now().Add(q.cfg.KafkaCooldown).UnixNano())
		q.log.Warn("kafka produce failed, votes are written directly",
			zap.Duration("for", q.cfg.KafkaCooldown), zap.Error(err))
		return errors.Join(vote.ErrQueueUnavailable, err)
	}
	q.markQueued(p, b)
	return nil
}

// slow tells a produce that timed out while Kafka is still acknowledging
// (it answers, only not this fast: overload) from Kafka being down or hung
// (nothing acknowledged for KafkaDownAfter). Errors other than a timeout
// (connection refused, no leader) mean down at once.
func (q *Queue) slow(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) &&
		q.now().Sub(time.Unix(0, q.producedAt.Load())) < q.cfg.KafkaDownAfter
}

// Settled hears how a ballot the queue could not take ended when it was
// recorded directly: recorded → the voter's flag says so; failed → the
// flag is released.
func (q *Queue) Settled(ctx context.Context, p *poll.Poll, b *vote.Ballot, err error) {
	if err == nil {
		q.markQueued(p, b)
		return
	}
	_ = ReleaseFlag(ctx, q.rdb, b.PollID, b.VoterID, b.RequestID)
}

// Accepted reports whether the request was accepted for the voter.
func (q *Queue) Accepted(ctx context.Context, pollID, voterID, requestID gocql.UUID) (bool, error) {
	n, err := q.rdb.Exists(ctx, redisx.AcceptedRequest(pollID, voterID, requestID)).Result()
	return n == 1, err
}

// flag sets the voter's flag to this request, pending, unless a flag
// exists, and marks the request accepted. A flag held by another request
// that Kafka acknowledged means the voter already voted: 409 at once. A
// flag held by another request still being produced is not proof of
// anything yet (that produce may fail): this request goes on and the
// conditional write decides. A flag holding this request is a retry: it
// goes through again, and the worker recognises it by request id. With
// Redis down the check is skipped; the conditional write still guarantees
// one vote.
//
// The vote route's rate limits, carried in ctx (ratelimit.Defer), are
// checked by the same script, before the flag: a refused request sets no
// flag and no marker. The bot signals (bots) are counted next, for a voter
// with no flag yet: the flags they raise go into b.Flags, and on a poll
// that rejects suspicious votes a tripped rule refuses the vote before its
// flag is set. The whole check is one round trip.
func (q *Queue) flag(ctx context.Context, b *vote.Ballot, bots *abuse.Check) error {
	lim := ratelimit.DeferredFrom(ctx)
	keys := append(lim.Keys(), redisx.VoterFlag(b.PollID, b.VoterID), redisx.AcceptedRequest(b.PollID, b.VoterID, b.RequestID))
	keys = append(keys, bots.Keys()...)
	rid := b.RequestID.String()
	args := append(lim.Args(), rid, flagPendingTTL.Milliseconds(), b.PollID.String(), q.cfg.RequestTTL.Milliseconds())
	args = append(args, bots.Args()...)
	reply, rerr := flagScript.Run(ctx, q.rdb, keys, args...).Result()
	body, err := lim.Settle(reply, rerr)
	switch {
	case err != nil:
		return err
	case rerr != nil:
		q.log.Debug("redis fast path unavailable", zap.Error(rerr))
		bots.Skip()
		return nil
	}
	vals, _ := body.([]any)
	if len(vals) != 2 {
		return fmt.Errorf("queue: unexpected flag script reply %v", body)
	}
	switch code, _ := vals[0].(int64); code {
	case flagSet:
		b.Flags, err = bots.Settle(vals[1], false)
		return err
	case flagRefused:
		_, err = bots.Settle(vals[1], true)
		return err
	case flagHeld:
	default:
		return fmt.Errorf("queue: unexpected flag script reply %v", body)
	}
	// The voter holds a flag: queued by another request is a duplicate;
	// this request's own (a retry) or another's still pending goes on, and
	// the conditional write decides.
	holder, _ := vals[1].(string)
	if strings.HasPrefix(holder, flagQueued) && strings.TrimPrefix(holder, flagQueued) != rid {
		return vote.ErrAlreadyVoted
	}
	return nil
}

// The flag script's answers.
const (
	flagHeld    = 0 // {0, holder}: the voter already holds a flag
	flagSet     = 1 // {1, tripped}: this request now holds the pending flag
	flagRefused = 2 // {2, tripped}: a bot rule refused the vote
)

// flagScript is flag's round trip: the deferred rate limits, then the
// voter's flag. A voter whose flag is another request's queued one is
// answered at once (no marker, no bot counting). A flag held by this
// request or by another still pending lets the request go on with its
// accepted marker. Otherwise the bot signals are counted (abuse.Lua),
// and unless they refuse the vote, the pending flag and the accepted
// marker are set.
var flagScript = ratelimit.Script(abuse.Lua + `
local fk, ak = KEYS[K + 1], KEYS[K + 2]
local rid = ARGV[A + 1]
local v = redis.call("GET", fk)
if v and string.sub(v, 1, 2) == "q:" and string.sub(v, 3) ~= rid then return {0, v} end
if v then
  redis.call("SET", ak, ARGV[A + 3], "PX", ARGV[A + 4])
  return {0, v}
end
local tripped, reject = bot_signals(K + 2, A + 4)
if reject then return {2, tripped} end
redis.call("SET", fk, "p:" .. rid, "PX", ARGV[A + 2])
redis.call("SET", ak, ARGV[A + 3], "PX", ARGV[A + 4])
return {1, tripped}`)

// markQueued records that the voter has a request durably queued (or
// recorded): the flag becomes this request's queued one, for as long as
// the poll, unless another request's queued flag is there already. It
// replaces any pending flag, this request's or another's (which may still
// fail). It is off the answer's path: if it is lost, the pending flag
// expires and the conditional write still refuses a second vote, only
// later.
func (q *Queue) markQueued(p *poll.Poll, b *vote.Ballot) {
	ttl := time.Until(p.EndTime) + time.Hour
	ttl = min(max(ttl, time.Hour), 90*24*time.Hour)
	m := mark{key: redisx.VoterFlag(b.PollID, b.VoterID), value: flagQueued + b.RequestID.String(), ttlMs: ttl.Milliseconds()}
	select {
	case q.marks <- m:
		if q.marking.CompareAndSwap(false, true) {
			go q.markLoop()
		}
	default:
		// The batcher is that far behind: this one goes alone.
		go q.flushMarks([]mark{m})
	}
}

// mark is one queued flag to set.
type mark struct {
	key, value string
	ttlMs      int64
}

// markBatch bounds one pipeline of marks.
const markBatch = 256

// markLoop sends the marks queued in the meantime as one pipeline, over and
// over, and ends after a quiet second (the next mark starts it again). At
// thousands of votes a second this turns a round trip and a goroutine per
// vote into one pipeline every few milliseconds.
func (q *Queue) markLoop() {
	batch := make([]mark, 0, markBatch)
	for {
		select {
		case m := <-q.marks:
			batch = append(batch[:0], m)
		case <-time.After(time.Second):
			q.marking.Store(false)
			// A mark queued between the timeout and the flag reset must
			// not wait for the next one: take over again if so.
			if len(q.marks) > 0 && q.marking.CompareAndSwap(false, true) {
				continue
			}
			return
		}
	fill:
		for len(batch) < markBatch {
			select {
			case m := <-q.marks:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		q.flushMarks(batch)
	}
}

// flushMarks runs the markQueued script for each mark in one pipeline.
func (q *Queue) flushMarks(marks []mark) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	run := func(sha bool) ([]redis.Cmder, error) {
		pipe := q.rdb.Pipeline()
		for _, m := range marks {
			if sha {
				markQueued.EvalSha(ctx, pipe, []string{m.key}, m.value, m.ttlMs)
			} else {
				markQueued.Eval(ctx, pipe, []string{m.key}, m.value, m.ttlMs)
			}
		}
		return pipe.Exec(ctx)
	}
	_, err := run(true)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// First use on this Redis (or after its restart): send the body.
		_, err = run(false)
	}
	if err != nil {
		q.log.Debug("mark vote flags queued", zap.Int("marks", len(marks)), zap.Error(err))
	}
}

// markQueued sets the queued flag unless a queued flag is there already.
var markQueued = redis.NewScript(`local v = redis.call("GET", KEYS[1])
if v and string.sub(v, 1, 2) == "q:" then return 0 end
return redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])`)

func (q *Queue) produce(ctx context.Context, p *poll.Poll, seenAt time.Time, b *vote.Ballot) error {
	msg := FromBallot(b)
	msg.PollSeenAt, msg.OptionsVersion = seenAt, p.OptionsVersion
	msg.HTTPRequestID = reqid.From(ctx)
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	err = q.producer.WriteMessages(ctx, kafka.Message{Key: b.VoterID[:], Value: body})
	q.produced.Observe(time.Since(start).Seconds())
	if err == nil {
		q.producedAt.Store(q.now().UnixNano())
		// Kafka answers: a cooldown a timed-out produce started is over.
		q.kafkaDown.Store(0)
	}
	return err
}
