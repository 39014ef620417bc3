package vote

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

// Config chooses how votes are taken.
type Config struct {
	// Mode is "async" (queue the ballot, answer 202; the worker records it)
	// or "sync" (record it before answering 200).
	Mode string `env:"MODE" envDefault:"async"`
	// LogSample keeps the outcome line (see OutcomeLog) of 1 vote request
	// in LogSample; failures are always logged. 1 logs every vote.
	LogSample int `env:"LOG_SAMPLE" envDefault:"100"`
}

// Polls is what casting needs of polls.
type Polls interface {
	// FreezeOptions freezes the options p was read with, or returns
	// poll.ErrOptionsChanged.
	FreezeOptions(ctx context.Context, p *poll.Poll) error
}

// Queue is the burst path: it holds ballots durably until the worker
// records them (pkg/queue implements it on Redis and Kafka).
type Queue interface {
	// Enqueue durably queues b. It returns ErrAlreadyVoted when the voter
	// is known to have another request queued or recorded, and
	// ErrQueueUnavailable when it cannot take the ballot now.
	// bots are the vote's bot signals, counted in the same step: their
	// flags go into b.Flags, or they refuse the vote (abuse.ErrSuspicious).
	Enqueue(ctx context.Context, p *poll.Poll, seenAt time.Time, b *Ballot, bots *abuse.Check) error
	// Settled tells the queue how a ballot it could not take ended when
	// it was recorded directly: err is nil when it was recorded.
	Settled(ctx context.Context, p *poll.Poll, b *Ballot, err error)
	// Accepted reports whether the request was queued for the voter.
	Accepted(ctx context.Context, pollID, voterID, requestID gocql.UUID) (bool, error)
}

// ErrQueueUnavailable: the queue cannot take ballots right now; Cast
// records them directly instead.
var ErrQueueUnavailable = errors.New("vote queue unavailable")

// Receipt is what a caster gets: a queued request (202) or the ballot that
// holds for the voter (200).
type Receipt struct {
	RequestID gocql.UUID
	Recorded  *Ballot
}

// Request is a voter's request to vote, as the transport received it.
type Request struct {
	PollID, VoterID gocql.UUID
	Anonymous       bool
	OptionIDs       []gocql.UUID
	IdempotencyKey  string
	IP, UserAgent   string
	// Device is the client's device fingerprint header, or empty.
	Device string
	// AccountCreated is the voter's registration time, zero if unknown.
	AccountCreated time.Time
}

// maxUserAgent bounds the user agent kept with a ballot.
const maxUserAgent = 512

// ballot builds the ballot a request asks for: a fresh vote id, and the
// request id retries of it share (see RequestIDs).
func (s *Service) ballot(r Request) *Ballot {
	ua := r.UserAgent
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return &Ballot{
		PollID:         r.PollID,
		VoterID:        r.VoterID,
		OptionIDs:      r.OptionIDs,
		VoteID:         gocql.MustRandomUUID(),
		RequestID:      s.ids.New(r.PollID, r.VoterID, r.IdempotencyKey),
		IdempotencyKey: r.IdempotencyKey,
		VotedAt:        s.now().UTC().Truncate(time.Millisecond),
		Anonymous:      r.Anonymous,
		IP:             r.IP,
		UserAgent:      ua,
		Device:         s.bots.DeviceHash(r.Device),
	}
}

// freezeTimeout bounds the options freeze on an async vote's path (once
// per poll and process); past it the worker freezes them.
const freezeTimeout = time.Second

// cast is the act of voting, in both modes: it applies the voting rules
// to b on p (as read at seenAt) once, then queues it (async) or records it
// (sync, or when the queue is unavailable).
func (s *Service) cast(ctx context.Context, p *poll.Poll, seenAt time.Time, b *Ballot, sig abuse.Signals) (Receipt, error) {
	if err := CheckVoter(p, b.Anonymous, s.now()); err != nil {
		if errors.Is(err, poll.ErrNotActive) && b.IdempotencyKey != "" {
			return s.original(ctx, b, err)
		}
		return Receipt{}, err
	}
	opts, err := Choose(p, b.OptionIDs)
	if err != nil {
		return Receipt{}, err
	}
	b.OptionIDs = opts
	async := s.cfg.Mode == "async" && s.queue != nil
	// Freeze the options this vote was checked against before it can be
	// accepted: an owner replacing them afterwards is refused. With
	// Cassandra unreachable an async vote is still queued and the worker
	// freezes them when it applies it (see Admissible).
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if async {
		// Queued votes must not wait on a hung Cassandra: bounded.
		fctx, cancel = context.WithTimeout(ctx, freezeTimeout)
	}
	err = s.polls.FreezeOptions(fctx, p)
	cancel()
	switch {
	case errors.Is(err, poll.ErrOptionsChanged):
		return Receipt{}, err
	case err != nil && !async:
		return Receipt{}, err
	case err != nil:
		s.log.Warn("freeze options deferred to the worker", zap.Stringer("poll_id", p.ID), zap.Error(err))
	}
	bots := s.bots.For(p, sig)
	if !async {
		// No flag round trip to share: the route's rate limits and the
		// bot signals are checked on their own before the write.
		if err := s.checkDirect(ctx, b, bots); err != nil {
			return Receipt{}, err
		}
		return s.recordNow(ctx, p, b, "recorded_sync")
	}
	// The queue's flag step checks the route's rate limits and counts the
	// bot signals in its round trip (see ratelimit.Defer, abuse.Check).
	err = s.queue.Enqueue(ctx, p, seenAt, b, bots)
	switch {
	case err == nil:
		s.m.casts.WithLabelValues("accepted").Inc()
		return Receipt{RequestID: b.RequestID}, nil
	case errors.Is(err, ErrAlreadyVoted):
		s.m.casts.WithLabelValues("fast_duplicate").Inc()
		return Receipt{}, err
	case !errors.Is(err, ErrQueueUnavailable):
		return Receipt{}, s.refused(err)
	}
	// The queue is down: write through, once the limits and bot signals
	// the queue did not get to check (it may have refused before its flag
	// step) allow it. The ballot completes even if the client goes away
	// now.
	if err := s.checkDirect(ctx, b, bots); err != nil {
		s.queue.Settled(ctx, p, b, err)
		return Receipt{}, err
	}
	ctx = context.WithoutCancel(ctx)
	rec, err := s.recordNow(ctx, p, b, "fallback_sync")
	if errors.Is(err, ErrAlreadyVoted) {
		s.queue.Settled(ctx, p, b, nil)
	} else {
		s.queue.Settled(ctx, p, b, err)
	}
	return rec, err
}

// checkDirect checks, for a vote about to be written without the queue's
// flag step, the route's rate limits and bot signals that step would have
// checked (each only if still pending), one round trip each.
func (s *Service) checkDirect(ctx context.Context, b *Ballot, bots *abuse.Check) error {
	if err := ratelimit.Enforce(ctx); err != nil {
		return s.refused(err)
	}
	flags, err := bots.Evaluate(ctx)
	if err != nil {
		return s.refused(err)
	}
	if flags != nil {
		b.Flags = flags
	}
	return nil
}

// refused counts a vote refused before it was queued or written: by the
// rate limits (429, or 503 for a fail-closed vote class with Redis down),
// a bot rule (403) or the queue shedding load (503).
func (s *Service) refused(err error) error {
	switch {
	case errors.Is(err, apperr.ErrRateLimited):
		s.m.casts.WithLabelValues("rate_limited").Inc()
	case errors.Is(err, abuse.ErrSuspicious):
		s.m.casts.WithLabelValues("suspicious").Inc()
	default:
		s.m.casts.WithLabelValues("rejected").Inc()
	}
	return err
}

// recordNow records b before answering.
func (s *Service) recordNow(ctx context.Context, p *poll.Poll, b *Ballot, outcome string) (Receipt, error) {
	stored, _, err := s.Record(ctx, p, b)
	switch {
	case errors.Is(err, ErrAlreadyVoted):
		s.m.casts.WithLabelValues("duplicate").Inc()
		return Receipt{}, err
	case err != nil:
		s.m.casts.WithLabelValues("rejected").Inc()
		return Receipt{}, err
	}
	s.m.casts.WithLabelValues(outcome).Inc()
	return Receipt{Recorded: stored}, nil
}

// original answers a retry (same Idempotency-Key) that arrives after the
// poll closed with the outcome of the first request: the recorded ballot,
// or the queued request. Anything else gets notActive.
func (s *Service) original(ctx context.Context, b *Ballot, notActive error) (Receipt, error) {
	stored, err := s.Mine(ctx, b.PollID, b.VoterID)
	switch {
	case err == nil && b.SameRequest(stored):
		s.m.casts.WithLabelValues("replayed_after_close").Inc()
		return Receipt{Recorded: stored}, nil
	case err != nil && !errors.Is(err, ErrNoVote):
		return Receipt{}, err
	}
	if s.queue != nil {
		if ok, err := s.queue.Accepted(ctx, b.PollID, b.VoterID, b.RequestID); err == nil && ok {
			s.m.casts.WithLabelValues("replayed_after_close").Inc()
			return Receipt{RequestID: b.RequestID}, nil
		}
	}
	return Receipt{}, notActive
}

// Admissible re-checks, when the worker applies it, a ballot that was
// accepted on p's options version optionsVersion by an API that read the
// poll at seenAt, against p as it is now: its options must still be the
// poll's, and the poll must have been open when the ballot was accepted.
// A ballot accepted just after an owner's close by an API whose view
// predated the close counts within grace; the final tally waits that long
// past the close. A refused ballot is permanently invalid.
func Admissible(p *poll.Poll, b *Ballot, seenAt time.Time, optionsVersion int, grace time.Duration) error {
	if optionsVersion != p.OptionsVersion {
		return poll.ErrOptionsChanged
	}
	for _, id := range b.OptionIDs {
		if _, ok := p.Option(id); !ok {
			return ErrInvalidOption
		}
	}
	at := b.VotedAt
	if at.Before(p.StartTime) || !at.Before(p.EndTime) {
		return poll.ErrNotActive
	}
	if !p.ClosedAt.IsZero() && !at.Before(p.ClosedAt) {
		sawOpen := !seenAt.IsZero() && seenAt.Before(p.ClosedAt)
		if !sawOpen || at.Sub(p.ClosedAt) > grace {
			return poll.ErrNotActive
		}
	}
	return nil
}
