package vote

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/reqid"
	"github.com/tally-vote/tally/pkg/tracing"
)

// Config chooses how votes are taken.
type Config struct {
	// Mode is "async" (queue the ballot, answer 202; the worker records it)
	// or "sync" (record it before answering 200).
	Mode string `env:"MODE" envDefault:"async"`
	// LogSample keeps the outcome line (see OutcomeLog) of 1 vote request
	// in LogSample; failures are always logged. 1 logs every vote.
	LogSample int `env:"LOG_SAMPLE" envDefault:"100"`
	// FollowUpBudget bounds how long a direct write (sync mode,
	// write-through) retries its counter and index writes before it
	// answers; past it the ballot is recorded, its unfinished entry stays,
	// and the poll's final tally completes it.
	FollowUpBudget time.Duration `env:"FOLLOWUP_BUDGET" envDefault:"20s"`
}

// Polls is what casting needs of polls.
type Polls interface {
	// View reads the poll a vote is cast on, and when it was read.
	View(ctx context.Context, pollID id.ID) (p *poll.Poll, seenAt time.Time, err error)
	// FreezeOptions freezes the options p was read with, or returns
	// poll.ErrOptionsChanged.
	FreezeOptions(ctx context.Context, p *poll.Poll) error
}

// Voters admits anonymous voters to invite and proof-of-work polls
// (pkg/anonaccess): on those the ballot's voter is the caller's invite code
// or solved challenge, read from its credentials, not its token.
type Voters interface {
	Voter(ctx context.Context, p *poll.Poll, caller id.ID, anonymous bool, credentials http.Header) (id.ID, error)
}

// Queue is the burst path: it holds ballots durably until the worker
// drains them (pkg/kafkax/votes implements it on Kafka).
type Queue interface {
	// Available reports whether the queue takes ballots now; while it does
	// not, Cast records them directly.
	Available() bool
	// Enqueue durably queues b, whose voter the admission flagged. It
	// returns ErrQueueUnavailable when it cannot take the ballot now, and
	// ErrShed when it sheds it (the client retries later).
	Enqueue(ctx context.Context, p *poll.Poll, seenAt time.Time, b *Ballot) error
}

// Flags is the voter's flag in the fast path (pkg/redisx/admission
// implements it): the admission sets it pending; it says queued once the
// ballot is durably queued or recorded, and it is released when the
// request will never produce a ballot, so the voter can vote again.
type Flags interface {
	// MarkQueued marks b's request as the voter's queued one once its
	// ballot is durably queued, before the 202, and says what it found.
	// It replaces only this request's own pending flag: where the flag is
	// gone, the worker already released it (the vote was refused) and a
	// late mark must not lock the voter out; where another request holds
	// it, that request (a stale flag's takeover writing through, or a
	// queued one) decides the voter's ballot, not this one.
	MarkQueued(ctx context.Context, p *poll.Poll, b *Ballot) (Mark, error)
	// MarkRecorded marks b's request as the voter's queued one once its
	// ballot is known written (a direct write), whether or not a flag is
	// there, so the voter's next request is refused fast.
	MarkRecorded(p *poll.Poll, b *Ballot)
	// Release deletes the voter's flag if it still holds requestID.
	Release(ctx context.Context, pollID, voterID, requestID id.ID) error
	// Withdraw releases the flag as Release does and forgets that the
	// request was accepted: it was answered with an error, never 202.
	Withdraw(ctx context.Context, pollID, voterID, requestID id.ID) error
	// Forget forgets that the request was accepted and leaves the flag:
	// it was answered with an error, but its ballot may still be
	// recorded (a produce that missed its deadline), so the voter is not
	// free until that is known.
	Forget(ctx context.Context, pollID, voterID, requestID id.ID) error
	// Accepted reports whether the request was accepted for the voter
	// (the admission's marker).
	Accepted(ctx context.Context, pollID, voterID, requestID id.ID) (bool, error)
}

// Mark is what MarkQueued found on the voter's flag.
type Mark int

// Marks.
const (
	// MarkUnknown: Redis did not answer.
	MarkUnknown Mark = iota
	// MarkQueued: the flag is this request's queued one.
	MarkQueued
	// MarkGone: there is no flag (the worker refused the ballot and
	// released it, or Redis lost it).
	MarkGone
	// MarkOtherPending: another request took the flag over (this one's
	// pending flag was judged stale) and is writing its ballot through.
	MarkOtherPending
	// MarkOtherQueued: another request of the voter is queued or
	// recorded.
	MarkOtherQueued
)

// Admission is the vote's admission in Redis, one round trip each: the
// route's rate limits, the bot signals, and (Flag only) the voter's flag
// and the request's accepted marker. pkg/redisx/admission implements it
// with one script. With Redis unavailable the limits follow their class's
// failure mode and the bot signals are skipped; the conditional write
// still guarantees one vote.
type Admission interface {
	// Flag checks a's limits, then, for a voter without a flag, counts
	// the bot signals and, unless they refuse the vote, flags the voter
	// pending with this request; it marks the request accepted unless the
	// vote is refused. It returns ErrAlreadyVoted when another request
	// that was queued holds the voter's flag, a *ratelimit.Limited or
	// ratelimit.ErrUnavailable from the limits, abuse.ErrSuspicious from
	// a bot rule; tripped rules go into a.Ballot.Flags.
	Flag(ctx context.Context, a *Admit) error
	// Check checks a's limits and counts its bot signals, those still
	// pending only, for a vote written without the queue: the same rules
	// as Flag, without the flag and the marker.
	Check(ctx context.Context, a *Admit) error
}

// Admit is one vote's admission: its ballot, and the route's limits and
// bot rules, each checked once. It is used by one request.
type Admit struct {
	Ballot *Ballot
	Limits *ratelimit.Deferred // nil: no limits
	Bots   *abuse.Check        // nil: no bot rules
	// Retry is set by Flag when an earlier attempt with the same
	// Idempotency-Key was admitted and may have been queued: the voter's
	// flag was already this request's, or gone while the request's
	// marker stayed. This attempt's ballot may then never be the one
	// recorded, and its answer carries no salt.
	Retry bool
}

// ErrQueueUnavailable: the queue cannot take ballots right now; Cast
// records them directly instead.
var ErrQueueUnavailable = errors.New("vote queue unavailable")

// Receipt is what a caster gets: a queued request (202) or the ballot that
// holds for the voter (200).
type Receipt struct {
	RequestID id.ID
	Recorded  *Ballot
	// VoteID is the queued ballot's vote id (a 202 with a salt); zero
	// for a retry, whose first attempt's ballot is the one that counts.
	VoteID id.ID
	// Signed is Recorded's receipt (nil with receipts off or a ballot
	// recorded before them).
	Signed *receipt.Receipt
	// Salt opens the commitment of the ballot this attempt wrote, and is
	// set only when that ballot is (or, queued, will be) the one stored
	// for the request: never on a replay or a retry (see Service.commit).
	// Nil when receipts are off. It is never stored, logged or queued.
	Salt []byte
	// Limit is the route's rate limits' state once they allowed the vote
	// (zero when none was checked), for the RateLimit-* headers.
	Limit ratelimit.Decision
}

// Request is a voter's request to vote, as the transport received it.
type Request struct {
	// VoterID is the caller: its account, or its anonymous token (Cast
	// turns that into the voter an invite or proof-of-work poll admits).
	PollID, VoterID id.ID
	Anonymous       bool
	// Credentials are the caller's anonymous-access headers (invite code,
	// proof of work), read only on polls that ask for them.
	Credentials http.Header
	OptionIDs   []id.ID
	// Scores are a score ballot's scores, Scores[i] for OptionIDs[i]; nil
	// on every other method.
	Scores         []int
	IdempotencyKey string
	IP, UserAgent  string
	// Device is the client's device fingerprint header, or empty.
	Device string
	// AccountCreated is the voter's registration time, zero if unknown.
	AccountCreated time.Time
	// Limits are the request's hits under the vote route's rate limits
	// (ratelimit.Vote), checked in the admission's round trip.
	Limits []ratelimit.Hit
}

// maxUserAgent bounds the user agent kept with a ballot, in bytes.
const maxUserAgent = 512

// textColumn is a client's header value as a text column takes it: bytes
// that are not UTF-8 become U+FFFD (Cassandra refuses the row otherwise),
// and the result is cut to at most n bytes at a character boundary, so the
// cut never splits a character either.
func textColumn(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Cast is the act of voting: it reads the poll r votes on and who votes
// (see Voters), builds the ballot r asks for and casts it (see cast), then
// writes the outcome line.
func (s *Service) Cast(ctx context.Context, r Request) (Receipt, error) {
	start := time.Now()
	p, seenAt, err := s.polls.View(ctx, r.PollID)
	if err != nil {
		return Receipt{}, err
	}
	if s.voters != nil {
		if r.VoterID, err = s.voters.Voter(ctx, p, r.VoterID, r.Anonymous, r.Credentials); err != nil {
			return Receipt{}, err
		}
	}
	b := s.ballot(r)
	a := &Admit{Ballot: b, Limits: s.limits.Defer(ratelimit.Vote, r.Limits...),
		Bots: s.bots.For(p, abuse.Signals{IP: r.IP, UserAgent: r.UserAgent, Device: b.Device,
			Anonymous: r.Anonymous, AccountCreated: r.AccountCreated})}
	rec, err := s.cast(ctx, p, seenAt, a)
	if err == nil && a.Limits != nil && a.Limits.Decision.Allowed {
		rec.Limit = a.Limits.Decision
	}
	line := OutcomeLine{Stage: "api", PollID: r.PollID, RequestID: b.RequestID, HTTPRequestID: reqid.From(ctx),
		Took: time.Since(start), Err: err, Trace: tracing.LogField(ctx)}
	if len(b.Flags) > 0 {
		line.Fields = append(line.Fields, zap.Strings("flags", b.Flags))
	}
	switch {
	case err == nil && rec.Recorded != nil:
		line.Outcome = "recorded"
	case err == nil:
		line.Outcome = "accepted"
	case errors.Is(err, ErrAlreadyVoted):
		line.Outcome, line.Duplicate = "duplicate", true
	case errors.Is(err, abuse.ErrSuspicious):
		line.Outcome = "suspicious"
	case errors.Is(err, apperr.ErrUnavailable):
		line.Outcome, line.Failed = "rejected", true
	default:
		// The voting rules said no (closed poll, unknown option, ...): the
		// client's mistake, logged at the sampled rate.
		line.Outcome = "refused"
	}
	s.outcomes.Write(line)
	return rec, err
}

// ballot builds the ballot a request asks for: a fresh vote id, and the
// request id retries of it share (see RequestIDs).
func (s *Service) ballot(r Request) *Ballot {
	return &Ballot{
		PollID:         r.PollID,
		VoterID:        r.VoterID,
		OptionIDs:      r.OptionIDs,
		Scores:         r.Scores,
		VoteID:         id.New(),
		RequestID:      s.ids.New(r.PollID, r.VoterID, r.IdempotencyKey),
		IdempotencyKey: r.IdempotencyKey,
		VotedAt:        s.now().UTC().Truncate(time.Millisecond),
		Anonymous:      r.Anonymous,
		IP:             r.IP,
		UserAgent:      textColumn(r.UserAgent, maxUserAgent),
		Device:         s.bots.DeviceHash(r.Device),
	}
}

// freezeTimeout bounds the options freeze on an async vote's path (once
// per poll and process); past it the vote is refused with 503.
const freezeTimeout = time.Second

// cast is the act of voting, in both modes: it applies the voting rules
// to a's ballot on p (as read at seenAt) once, then admits and queues it
// (async) or admits and records it (sync, or when the queue is
// unavailable).
func (s *Service) cast(ctx context.Context, p *poll.Poll, seenAt time.Time, a *Admit) (Receipt, error) {
	b := a.Ballot
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
	if err := CheckScores(p, len(opts), b.Scores); err != nil {
		return Receipt{}, err
	}
	b.OptionIDs = opts
	salt, err := s.commit(b)
	if err != nil {
		return Receipt{}, err
	}
	async := s.cfg.Mode == "async" && s.queue != nil
	// Freeze the options this vote was checked against before it can be
	// accepted: an owner replacing them afterwards is refused. Until the
	// freeze is known to hold, no 2xx: an owner's PATCH checks the frozen
	// flag and the index, and a vote still queued is in neither, so a 202
	// on an unconfirmed freeze could be followed by a replacement that
	// dead-letters it. Once frozen (the poll's first votes) this costs
	// nothing (not even the deadline's timer), so only the first votes of
	// a poll wait on it.
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if async && !p.OptionsFrozen {
		// Queued votes must not wait long on a hung Cassandra: bounded.
		fctx, cancel = context.WithTimeout(ctx, freezeTimeout)
	}
	err = s.polls.FreezeOptions(fctx, p)
	cancel()
	switch {
	case errors.Is(err, poll.ErrOptionsChanged):
		return Receipt{}, err
	case err != nil && ctx.Err() != nil:
		return Receipt{}, err // the client gave up
	case err != nil:
		s.m.casts.WithLabelValues("freeze_unconfirmed").Inc()
		if !errors.Is(err, apperr.ErrUnavailable) {
			err = apperr.Unavailable("freeze options", err)
		}
		return Receipt{}, err
	}
	if !async {
		// No flag to set: the route's rate limits and the bot signals are
		// checked before the write.
		if err := s.checkDirect(ctx, a); err != nil {
			return Receipt{}, err
		}
		return s.recordNow(ctx, p, b, salt, "recorded_sync")
	}
	err = s.enqueue(ctx, p, seenAt, a)
	switch {
	case err == nil:
		s.m.casts.WithLabelValues("accepted").Inc()
		return s.accepted(b, salt, a.Retry), nil
	case errors.Is(err, ErrAlreadyVoted) && b.IdempotencyKey != "" && p.Settings.AllowVoteChange:
		// The voter's flag is held by another request: on a poll whose
		// ballots change, that is also a vote cast again after a revoke,
		// and this may be a retry of the first vote, answered with its
		// original outcome from the row (one read, on the refusal path).
		return s.original(ctx, b, err)
	case errors.Is(err, ErrAlreadyVoted):
		s.m.casts.WithLabelValues("fast_duplicate").Inc()
		return Receipt{}, err
	case !errors.Is(err, ErrQueueUnavailable):
		return Receipt{}, s.refused(err)
	}
	// The queue is down: write through, once the limits and bot signals
	// the admission did not get to check (the queue may have been down
	// before it ran) allow it. The ballot completes even if the client
	// goes away now.
	if err := s.checkDirect(ctx, a); err != nil {
		s.settled(ctx, p, b, err)
		return Receipt{}, err
	}
	ctx = context.WithoutCancel(ctx)
	rec, err := s.recordNow(ctx, p, b, salt, "fallback_sync")
	switch {
	case errors.Is(err, ErrAlreadyVoted):
		s.settled(ctx, p, b, nil)
	case errors.Is(err, apperr.ErrUnavailable) && s.flags != nil:
		// The write failed in a way that may have stored the ballot (an
		// outcome the serial read could not settle): the voter's pending
		// flag stays, as for a shed produce. A retry of this request (same
		// key) proceeds over it and settles; another request waits (503)
		// until the flag is stale and then writes through, where the
		// conditional write decides. Releasing it let another request be
		// queued (202) and then fail on this ballot's row.
		_ = s.flags.Forget(context.WithoutCancel(ctx), b.PollID, b.VoterID, b.RequestID)
	default:
		s.settled(ctx, p, b, err)
	}
	return rec, err
}

// settled moves the voter's flag once a ballot the queue could not take
// ended, recorded directly: recorded → the flag says queued; failed → the
// flag is released, so the voter can vote again, and the request is no
// longer remembered as accepted (it was answered with the failure).
func (s *Service) settled(ctx context.Context, p *poll.Poll, b *Ballot, err error) {
	if s.flags == nil {
		return
	}
	if err == nil {
		s.flags.MarkRecorded(p, b)
		return
	}
	_ = s.flags.Withdraw(context.WithoutCancel(ctx), b.PollID, b.VoterID, b.RequestID)
}

// enqueue admits a's ballot (rate limits, bot signals and the voter's
// flag, one round trip) and queues it. While the queue is unavailable it
// admits and returns ErrQueueUnavailable, and Cast writes through.
func (s *Service) enqueue(ctx context.Context, p *poll.Poll, seenAt time.Time, a *Admit) error {
	// The flag first, also while the queue is down: a ballot queued just
	// before Kafka went away holds its voter's queued flag, and a second
	// request of that voter written through now would beat it to the
	// conditional write and break its 202.
	if s.admission != nil {
		if err := s.admission.Flag(ctx, a); err != nil {
			return err
		}
	}
	if !s.queue.Available() {
		return ErrQueueUnavailable
	}
	b := a.Ballot
	err := s.queue.Enqueue(ctx, p, seenAt, b)
	switch {
	case err == nil && s.flags != nil:
		return s.markQueued(ctx, p, b)
	case errors.Is(err, ErrShed) && s.flags != nil:
		// Shed: the produce missed its deadline, and its message may
		// still reach Kafka and be recorded. The voter's pending flag
		// stays: a retry of this request (same key) proceeds over it;
		// another request waits for it (503) until it goes stale, then
		// writes through and the conditional write decides, so no 202 is
		// given that the late ballot would make fail. A retry after the
		// close is not told it was accepted.
		_ = s.flags.Forget(context.WithoutCancel(ctx), b.PollID, b.VoterID, b.RequestID)
	}
	return err
}

// markQueued marks the voter's flag queued for b, durably queued now,
// before the 202. A 202 promises the ballot will be recorded, so where
// another request of the voter already holds the flag (it took this one's
// pending flag over as stale, or is queued) the answer is that request's
// outcome, not 202: this ballot will be refused when it is applied. With
// Redis not answering (or the flag gone) the 202 stands: the ballot is
// queued, and only a stale takeover could write another first.
func (s *Service) markQueued(ctx context.Context, p *poll.Poll, b *Ballot) error {
	m, err := s.flags.MarkQueued(ctx, p, b)
	var refused error
	switch {
	case err != nil:
		s.m.marks.WithLabelValues("unanswered").Inc()
		return nil
	case m == MarkOtherQueued:
		refused = ErrAlreadyVoted
	case m == MarkOtherPending:
		refused = ErrVoteUndecided
	default:
		s.m.marks.WithLabelValues(markLabel(m)).Inc()
		return nil
	}
	s.m.marks.WithLabelValues(markLabel(m)).Inc()
	_ = s.flags.Forget(context.WithoutCancel(ctx), b.PollID, b.VoterID, b.RequestID)
	return refused
}

func markLabel(m Mark) string {
	switch m {
	case MarkQueued:
		return "queued"
	case MarkGone:
		return "gone"
	case MarkOtherPending:
		return "other_pending"
	case MarkOtherQueued:
		return "other_queued"
	}
	return "unknown"
}

// checkDirect checks, for a vote about to be written without the queue,
// the route's rate limits and bot signals the admission's flag step would
// have checked (those still pending), in one round trip.
func (s *Service) checkDirect(ctx context.Context, a *Admit) error {
	if s.admission == nil || (!a.Limits.Pending() && !a.Bots.Pending()) {
		return nil
	}
	if err := s.admission.Check(ctx, a); err != nil {
		return s.refused(err)
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
	case errors.Is(err, ErrVoteUndecided):
		s.m.casts.WithLabelValues("undecided").Inc()
	default:
		s.m.casts.WithLabelValues("rejected").Inc()
	}
	return err
}

// recordNow records b before answering. The answer carries salt only when
// b itself was written (its commitment is the stored one): a replay
// answers the stored ballot, whose commitment this attempt's salt does not
// open.
func (s *Service) recordNow(ctx context.Context, p *poll.Poll, b *Ballot, salt []byte, outcome string) (Receipt, error) {
	stored, created, err := s.Record(ctx, p, b)
	switch {
	case errors.Is(err, ErrAlreadyVoted):
		s.m.casts.WithLabelValues("duplicate").Inc()
		return Receipt{}, err
	case err != nil:
		s.m.casts.WithLabelValues("rejected").Inc()
		return Receipt{}, err
	}
	s.m.casts.WithLabelValues(outcome).Inc()
	rec := Receipt{Recorded: stored, Signed: s.SignReceipt(stored)}
	switch {
	case rec.Signed == nil:
	case created && bytes.Equal(stored.Commitment, b.Commitment):
		// This attempt's ballot applied: a first vote, or a vote cast
		// again after a revoke (written over the revoked row, under its
		// first vote id, with this attempt's commitment).
		rec.Salt = salt
		s.m.receipts.WithLabelValues("recorded").Inc()
	default:
		s.m.receipts.WithLabelValues("replayed").Inc()
	}
	return rec, nil
}

// original answers a retry (same Idempotency-Key) that arrives after the
// poll closed with the outcome of the first request: the recorded ballot,
// or the queued request. Anything else gets notActive.
func (s *Service) original(ctx context.Context, b *Ballot, notActive error) (Receipt, error) {
	stored, err := s.Mine(ctx, b.PollID, b.VoterID)
	switch {
	case err == nil && (b.SameRequest(stored) || stored.Changes[b.RequestID] != (ChangeOutcome{})):
		s.m.casts.WithLabelValues("replayed_after_close").Inc()
		rec := Receipt{Recorded: stored, Signed: s.SignReceipt(stored)}
		if rec.Signed != nil {
			s.m.receipts.WithLabelValues("replayed").Inc()
		}
		return rec, nil
	case err != nil && !errors.Is(err, ErrNoVote):
		return Receipt{}, err
	}
	if s.queue != nil && s.flags != nil {
		if ok, err := s.flags.Accepted(ctx, b.PollID, b.VoterID, b.RequestID); err == nil && ok {
			s.m.casts.WithLabelValues("replayed_after_close").Inc()
			return Receipt{RequestID: b.RequestID}, nil
		}
	}
	return Receipt{}, notActive
}

// ErrFinalFrozen refuses a ballot that reaches the worker after its poll's
// final tally was frozen (a dead-letter replay, or anything delivered past
// the close's watermark): nothing is written to a frozen poll.
var ErrFinalFrozen = apperr.New(apperr.CodePollNotActive, "the poll's final tally is frozen; no vote is recorded after it")

// Judged is the view of the poll an API accepted a ballot on: the poll's
// version and options version as it read them (0 in messages older than
// the version).
type Judged struct {
	PollVersion, OptionsVersion int
}

// Admissible re-checks, when the worker applies it, a ballot that was
// accepted on the view j, against p as it is now: its options must still be
// the poll's, and the poll must have been open when the ballot was
// accepted. A ballot accepted just after an owner's close by an API whose
// view predated the close counts within grace; the final tally waits that
// long past the close. A refused ballot is permanently invalid.
//
// Whether the view predated the close is told by versions, not clocks: the
// API saw the poll open, and a view at the poll's current version would
// have shown the close, so any older one predated it. Comparing the time
// the API read the poll with closed_at refused ballots accepted on a read
// made in the instant between the close's stamp and its write, or on a
// clock ahead of the closing process's: a 202 then refused.
func Admissible(p *poll.Poll, b *Ballot, j Judged, grace time.Duration) error {
	if j.OptionsVersion != p.OptionsVersion {
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
		sawClose := j.PollVersion > 0 && j.PollVersion >= p.Version
		if sawClose || at.Sub(p.ClosedAt) > grace {
			return poll.ErrNotActive
		}
	}
	return nil
}
