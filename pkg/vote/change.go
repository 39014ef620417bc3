package vote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/retry"
)

// Change kinds: what a change request did to the voter's ballot.
const (
	KindChanged = "changed" // PUT: the ballot replaced
	KindRevoked = "revoked" // DELETE: the ballot revoked
	KindRecast  = "voted"   // POST after a revoke: the ballot cast again
)

// Audit events of changes; they never carry the choice.
const (
	AuditVoteChanged = "vote.changed"
	AuditVoteRevoked = "vote.revoked"
)

// Change sentinels.
var (
	ErrChangeNotAllowed = apperr.New(apperr.CodeForbidden, "this poll does not allow changing or revoking a vote")
	ErrNothingToChange  = apperr.New(apperr.CodeNotFound, "you have no vote on this poll to change or revoke; cast one with POST")
	ErrChangeLimit      = apperr.New(apperr.CodeVoteChangeLimit, "you have changed your vote on this poll as often as it allows")
	// ErrVotePending: the voter's ballot (or its last change) is still
	// being recorded: queued and not yet written, or written and not yet
	// counted. A change now is refused, never queued behind it, so the
	// queued request's 202 stands; retry shortly.
	ErrVotePending = apperr.New(apperr.CodeVoteChangeConflict, "your vote is still being recorded; retry the change shortly")
	// ErrChangeConflict: another change of the same ballot applied first
	// (between this request's read and its conditional write).
	ErrChangeConflict = apperr.New(apperr.CodeVoteChangeConflict, "your vote was changed by another request at the same time; read it and retry")
)

// ChangeOutcome is what one change request did: its kind and the ballot
// version it wrote.
type ChangeOutcome struct {
	Kind    string
	Version int
}

// String is the outcome as stored ("changed:3").
func (o ChangeOutcome) String() string { return o.Kind + ":" + strconv.Itoa(o.Version) }

// ParseChangeOutcome reads a stored outcome.
func ParseChangeOutcome(s string) (ChangeOutcome, bool) {
	kind, v, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		return ChangeOutcome{}, false
	}
	return ChangeOutcome{Kind: kind, Version: n}, true
}

// ChangeStore is what changing a ballot needs of the store
// (pkg/cassandra's VoteStore implements it).
type ChangeStore interface {
	// Change writes b, the next version of the voter's ballot, with
	// UPDATE ... IF version = from, recording requestID's outcome in the
	// row in the same write. When it does not apply it returns the stored
	// ballot. Unknown outcomes are settled by a serial read (the request
	// id in the row says whether this write applied).
	Change(ctx context.Context, b *Ballot, from int, requestID id.ID, o ChangeOutcome) (applied bool, stored *Ballot, err error)
	// Entry reads the voter's index entry; found is false without one.
	Entry(ctx context.Context, pollID id.ID, bucket int, voterID id.ID) (e IndexEntry, found bool, err error)
	// MoveEntry writes e as the voter's index entry if the entry's version
	// is still from (found=false: if there is no entry), and reports
	// whether it did; unknown outcomes are settled by a serial read.
	MoveEntry(ctx context.Context, pollID id.ID, bucket int, voterID id.ID, e IndexEntry, from int, found bool) (bool, error)
}

// CountMover moves one ballot's count in the live tally: it takes away
// what from counted and adds what to counts (either may be nil).
type CountMover interface {
	Move(ctx context.Context, p *poll.Poll, shard int, from, to *IndexEntry) error
}

// FlagHolder tells whether a voter's flag is held (a request of the voter
// is pending or queued); Flags implementations may offer it.
type FlagHolder interface {
	Holds(ctx context.Context, pollID, voterID id.ID) (bool, error)
}

// ChangeRequest is a voter's request to change (PUT) or revoke (DELETE)
// their ballot, as the transport received it.
type ChangeRequest struct {
	PollID, VoterID id.ID
	Anonymous       bool
	Credentials     http.Header
	// Revoke revokes the ballot; otherwise OptionIDs (and Scores on a
	// score poll) replace its choice.
	Revoke         bool
	OptionIDs      []id.ID
	Scores         []int
	IdempotencyKey string
}

// ChangeReceipt is the outcome of a change request: the ballot as it holds
// now and what this request did. Replayed is a retry answered from the
// row.
type ChangeReceipt struct {
	Ballot    *Ballot
	RequestID id.ID
	Outcome   ChangeOutcome
	Replayed  bool
	// Queued: the change was queued (async mode, 202); the worker applies
	// it, and the request's status says when (Outcome is unset).
	Queued bool
	// Salt opens the commitment of the new version this request wrote (or
	// queued): drawn fresh for every change, never stored, logged or
	// queued, and answered once. Nil on a revoke (a revoked ballot has no
	// commitment), a replay, a retry of a queued change, and with
	// receipts off.
	Salt []byte
}

// AcceptMarker remembers that a request was accepted, for its status
// (pkg/redisx/admission's Flags offers it): a queued change has no
// admission to set it.
type AcceptMarker interface {
	MarkAccepted(ctx context.Context, pollID, voterID, requestID id.ID) error
}

// changeKey is the key a change request's id is derived from: the kind
// and the client's key, so a PUT, a DELETE and a POST sharing one
// Idempotency-Key are three requests.
func changeKey(revoke bool, key string) string {
	if key == "" {
		return ""
	}
	if revoke {
		return "\x00revoke\x00" + key
	}
	return "\x00change\x00" + key
}

// Change changes or revokes the caller's ballot, synchronously in both
// modes: the rules a new vote meets, one conditional write on the voter's
// row against the version read, then the follow-ups (see settle) before
// the answer. A retry (same Idempotency-Key) is answered with its own
// outcome from the row.
func (s *Service) Change(ctx context.Context, r ChangeRequest) (ChangeReceipt, error) {
	start := time.Now()
	rec, err := s.change(ctx, r)
	kind := KindChanged
	if r.Revoke {
		kind = KindRevoked
	}
	label := "applied"
	switch {
	case err == nil && rec.Replayed:
		label = "replayed"
	case err == nil && rec.Queued:
		label = "queued"
	case errors.Is(err, ErrChangeConflict), errors.Is(err, ErrVotePending):
		label = "conflict"
	case errors.Is(err, ErrChangeLimit):
		label = "limit"
	case errors.Is(err, apperr.ErrUnavailable):
		label = "failed"
	case err != nil:
		label = "refused"
	}
	s.m.changes.WithLabelValues(kind, label).Inc()
	s.log.Debug("vote change", zap.Stringer("poll_id", r.PollID), zap.Stringer("request_id", rec.RequestID),
		zap.String("kind", kind), zap.String("outcome", label), zap.Duration("took", time.Since(start)), zap.Error(err))
	return rec, err
}

func (s *Service) change(ctx context.Context, r ChangeRequest) (ChangeReceipt, error) {
	if s.changes == nil || s.moves == nil {
		return ChangeReceipt{}, ErrChangeNotAllowed
	}
	p, seenAt, err := s.polls.View(ctx, r.PollID)
	if err != nil {
		return ChangeReceipt{}, err
	}
	if s.voters != nil {
		if r.VoterID, err = s.voters.Voter(ctx, p, r.VoterID, r.Anonymous, r.Credentials); err != nil {
			return ChangeReceipt{}, err
		}
	}
	rec := ChangeReceipt{RequestID: s.ids.New(r.PollID, r.VoterID, changeKey(r.Revoke, r.IdempotencyKey))}
	// The new ballot meets every rule a new vote meets, judged before
	// anything is read (a retry carries the same body, so it passes
	// again).
	var opts []id.ID
	if !r.Revoke {
		if opts, err = Choose(p, r.OptionIDs); err != nil {
			return rec, err
		}
		if err := CheckScores(p, len(opts), r.Scores); err != nil {
			return rec, err
		}
	}
	stored, err := s.store.Get(ctx, r.PollID, r.VoterID)
	switch {
	case errors.Is(err, ErrNoVote):
		// A first vote still queued has no row yet: say so (409), and
		// leave it to be recorded; otherwise there is nothing to change.
		return rec, s.nothingToChange(ctx, r.PollID, r.VoterID)
	case err != nil:
		return rec, err
	}
	// A retry of this request: its own outcome, also after the close.
	if o, ok := stored.Changes[rec.RequestID]; ok {
		rec.Ballot, rec.Outcome, rec.Replayed = stored, o, true
		s.releaseAgain(ctx, stored, o)
		return rec, nil
	}
	if !p.Settings.AllowVoteChange {
		return rec, ErrChangeNotAllowed
	}
	if err := CheckVoter(p, r.Anonymous, s.now()); err != nil {
		return rec, err
	}
	if stored.Revoked {
		// The revoke released the voter's flag: a flag held now is a
		// vote cast again and still queued.
		return rec, s.nothingToChange(ctx, r.PollID, r.VoterID)
	}
	next := *stored
	next.Version, next.ChangedAt = stored.Version+1, s.now().UTC().Truncate(time.Millisecond)
	// The new version gets a fresh salt and commitment; a revoked ballot
	// has none (it has no leaf in the ledger, and its receipts verify as
	// revoked).
	next.Commitment = nil
	var salt []byte
	if r.Revoke {
		next.Revoked = true
		rec.Outcome = ChangeOutcome{Kind: KindRevoked, Version: next.Version}
	} else {
		next.OptionIDs, next.Scores = opts, r.Scores
		rec.Outcome = ChangeOutcome{Kind: KindChanged, Version: next.Version}
	}
	if stored.Version >= p.Settings.VoteChanges() {
		return rec, ErrChangeLimit
	}
	if !r.Revoke {
		if salt, err = s.commit(&next); err != nil {
			return rec, err
		}
	}
	// The ballot must be counted at the version read before it changes
	// again: its first follow-ups (or the last change's) still running
	// would otherwise race this one's on the counters.
	e, found, err := s.changes.Entry(ctx, p.ID, Bucket(r.VoterID, p.IndexBuckets), r.VoterID)
	if err != nil {
		return rec, err
	}
	if !found || e.Version < stored.Version {
		return rec, ErrVotePending
	}
	if s.cfg.Mode == "async" && s.queue != nil && s.queue.Available() {
		queued, err := s.queueChange(ctx, p, seenAt, r, stored, next, rec, salt)
		if !errors.Is(err, ErrQueueUnavailable) {
			return queued, err
		}
		// The queue is down: the change is written through.
	}
	ctx = context.WithoutCancel(ctx) // once written, it completes
	if s.unfinished != nil {
		if err := s.unfinished.Begin(ctx, p.ID, r.VoterID); err != nil {
			return rec, err
		}
	}
	applied, cur, err := s.changes.Change(ctx, &next, stored.Version, rec.RequestID, rec.Outcome)
	switch {
	case err != nil:
		return rec, err
	case !applied:
		if o, ok := cur.Changes[rec.RequestID]; ok { // a concurrent retry of this request won
			rec.Ballot, rec.Outcome, rec.Replayed = cur, o, true
			return rec, nil
		}
		return rec, ErrChangeConflict
	}
	rec.Ballot, rec.Salt = &next, salt
	if salt != nil {
		s.m.receipts.WithLabelValues("changed").Inc()
	}
	if r.Revoke {
		s.release(ctx, stored)
	}
	s.audited(ctx, &next, rec.Outcome)
	s.finish(ctx, p, &next)
	return rec, nil
}

// queueChange queues a change like a vote (async mode): keyed by its
// voter, so the worker applies it after every earlier request of the
// voter. The worker judges it again against the row as it is then
// (ApplyChange). It returns ErrQueueUnavailable when the queue cannot take
// it, and the caller writes it through.
//
// The message carries the new version's commitment, never the salt. The
// 202 answers the salt unless the request was accepted already: a retry
// of a change still queued is queued behind it and replays its outcome,
// whose commitment another salt opens.
func (s *Service) queueChange(ctx context.Context, p *poll.Poll, seenAt time.Time, r ChangeRequest, stored *Ballot, next Ballot, rec ChangeReceipt, salt []byte) (ChangeReceipt, error) {
	b := &Ballot{PollID: r.PollID, VoterID: stored.VoterID, VoteID: stored.VoteID, RequestID: rec.RequestID,
		IdempotencyKey: r.IdempotencyKey, VotedAt: s.now().UTC().Truncate(time.Millisecond), Anonymous: r.Anonymous,
		Change: rec.Outcome.Kind}
	if !r.Revoke {
		b.OptionIDs, b.Scores, b.Commitment = next.OptionIDs, next.Scores, next.Commitment
	}
	if salt != nil && s.flags != nil {
		if ok, err := s.flags.Accepted(ctx, b.PollID, b.VoterID, b.RequestID); err != nil || ok {
			// A retry of a queued change (or Redis cannot say): no salt.
			salt = nil
			s.m.receipts.WithLabelValues("retried").Inc()
		}
	}
	if m, ok := s.flags.(AcceptMarker); ok {
		if err := m.MarkAccepted(ctx, b.PollID, b.VoterID, b.RequestID); err != nil {
			s.log.Warn("mark a queued change accepted; its status reads 404 until it is applied",
				zap.Stringer("poll_id", b.PollID), zap.Error(err))
		}
	}
	if err := s.queue.Enqueue(ctx, p, seenAt, b); err != nil {
		return rec, err
	}
	rec.Queued, rec.Outcome, rec.Ballot, rec.Salt = true, ChangeOutcome{}, stored, salt
	if salt != nil {
		s.m.receipts.WithLabelValues("accepted").Inc()
	}
	return rec, nil
}

// ApplyChange is the worker's apply of a queued change (b.Change): judged
// against the voter's row as it is now, then the same conditional write as
// a direct change. A redelivery (the row records the request) is answered
// from the row, and its follow-ups settle nothing twice. A change that
// cannot apply (no ballot, a revoked one, the limit, changes switched off)
// is refused with that error, stored as the request's failure.
func (s *Service) ApplyChange(ctx context.Context, p *poll.Poll, b *Ballot) (Outcome, error) {
	if s.changes == nil {
		return Outcome{}, ErrChangeNotAllowed
	}
	for range maxSettleAttempts {
		stored, err := s.store.Get(ctx, b.PollID, b.VoterID)
		switch {
		case errors.Is(err, ErrNoVote):
			return Outcome{}, ErrNothingToChange
		case err != nil:
			return Outcome{}, err
		}
		if o, ok := stored.Changes[b.RequestID]; ok {
			s.m.outcomes.WithLabelValues("replayed").Inc()
			s.releaseAgain(ctx, stored, o)
			return Outcome{Poll: p, Ballot: stored}, nil
		}
		switch {
		case !p.Settings.AllowVoteChange:
			return Outcome{}, ErrChangeNotAllowed
		case stored.Revoked:
			return Outcome{}, ErrNothingToChange
		case stored.Version >= p.Settings.VoteChanges():
			return Outcome{}, ErrChangeLimit
		}
		next := *stored
		next.Version, next.ChangedAt = stored.Version+1, b.VotedAt
		o := ChangeOutcome{Kind: b.Change, Version: next.Version}
		// The commitment the API drew for this change (its salt went to
		// the 202 only); a revoke clears it.
		next.Commitment = nil
		if b.Change == KindRevoked {
			next.Revoked = true
		} else {
			next.OptionIDs, next.Scores, next.Commitment = b.OptionIDs, b.Scores, b.Commitment
		}
		applied, cur, err := s.changes.Change(ctx, &next, stored.Version, b.RequestID, o)
		switch {
		case err != nil:
			return Outcome{}, err
		case applied:
			s.m.outcomes.WithLabelValues("changed").Inc()
			if next.Revoked {
				s.release(ctx, stored)
			}
			s.audited(ctx, &next, o)
			return Outcome{Poll: p, Ballot: &next, New: true, Count: true}, nil
		case cur != nil && cur.Changes[b.RequestID] != (ChangeOutcome{}):
			return Outcome{Poll: p, Ballot: cur}, nil
		}
		// A direct change of the same ballot won: judge this one again.
	}
	return Outcome{}, apperr.Unavailable("apply queued change", fmt.Errorf("the ballot of voter %s kept changing", b.VoterID))
}

// nothingToChange is the answer to a change of a voter without a current
// ballot: ErrVotePending (409) while a vote of theirs is queued (the
// voter's flag is held), so the change never overtakes it and its 202
// stands; ErrNothingToChange (404) otherwise.
func (s *Service) nothingToChange(ctx context.Context, pollID, voterID id.ID) error {
	if h, ok := s.flags.(FlagHolder); ok {
		if held, err := h.Holds(ctx, pollID, voterID); err == nil && held {
			return ErrVotePending
		}
	}
	return ErrNothingToChange
}

// release frees the voter's flag after a revoke, so the voter may vote
// again (the flag says their ballot is queued or recorded): the flag holds
// the request that last cast the ballot.
func (s *Service) release(ctx context.Context, b *Ballot) {
	if s.flags == nil {
		return
	}
	holder, best := b.RequestID, -1
	for rid, o := range b.Changes {
		if o.Kind == KindRecast && o.Version > best {
			holder, best = rid, o.Version
		}
	}
	if err := s.flags.Release(ctx, b.PollID, b.VoterID, holder); err != nil {
		s.log.Warn("release voter flag after revoke; a new vote is refused until it expires",
			zap.Stringer("poll_id", b.PollID), zap.Error(err))
	}
}

// releaseAgain releases the voter's flag once more when a revoke is
// replayed (a redelivery, a retry) and the ballot is still revoked at the
// version it wrote: a crash between the revoke's write and its release
// would otherwise hold the flag and refuse the voter's next vote
// ALREADY_VOTED until the flag expires. Releasing is a compare-and-delete
// on the request that cast the ballot, so a vote cast again since then
// (which holds the flag under its own request) keeps its flag.
func (s *Service) releaseAgain(ctx context.Context, stored *Ballot, o ChangeOutcome) {
	if o.Kind == KindRevoked && stored.Revoked && stored.Version == o.Version {
		s.release(ctx, stored)
	}
}

func (s *Service) audited(ctx context.Context, b *Ballot, o ChangeOutcome) {
	if s.audit == nil {
		return
	}
	kind := AuditVoteChanged
	if o.Kind == KindRevoked {
		kind = AuditVoteRevoked
	}
	// Never the choice: the vote id and the version say which ballot
	// changed, and when.
	s.audit.Record(ctx, b.PollID, b.VoterID, kind, map[string]any{"vote_id": b.VoteID.String(),
		"version": b.Version, "after_revoke": o.Kind == KindRecast})
}

// finish runs a direct change's follow-ups within the follow-up budget;
// past it the unfinished entry stays for the final tally to complete.
func (s *Service) finish(ctx context.Context, p *poll.Poll, b *Ballot) {
	budget := s.cfg.FollowUpBudget
	if budget <= 0 {
		budget = defaultFollowUpBudget
	}
	fctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := retry.Do(fctx, followUpPolicy, func(int) error { return s.FollowUps(fctx, []Outcome{{Poll: p, Ballot: b}}) }, nil)
	switch {
	case err != nil:
		s.m.unfinished.WithLabelValues("left").Inc()
		s.log.Error("vote change written but its follow-ups did not finish; the poll's final tally completes it",
			zap.Stringer("poll_id", b.PollID), zap.Stringer("vote_id", b.VoteID), zap.Error(err))
	case s.unfinished != nil:
		if err := s.unfinished.Done(ctx, b.PollID, b.VoterID); err != nil {
			s.log.Warn("remove unfinished entry", zap.Stringer("poll_id", b.PollID), zap.Error(err))
		}
	}
}

// recast writes b over a revoked ballot (a vote cast again while the poll
// is open), as the next version of the row: vote_id, request_id and
// idempotency key stay the first vote's, so retries of that vote still get
// its outcome, and b's request is recorded among the changes.
func (s *Service) recast(ctx context.Context, p *poll.Poll, b, stored *Ballot) (Outcome, error) {
	for stored.Revoked {
		if s.changes == nil || !p.Settings.AllowVoteChange {
			break
		}
		if stored.Version >= p.Settings.VoteChanges() {
			s.m.outcomes.WithLabelValues("duplicate").Inc()
			return Outcome{Poll: p, Ballot: stored}, ErrChangeLimit
		}
		next := *stored
		next.Version, next.Revoked, next.ChangedAt = stored.Version+1, false, b.VotedAt
		// The vote cast again brings its own commitment, drawn at its
		// accept with a fresh salt.
		next.OptionIDs, next.Scores, next.Flags, next.Commitment = b.OptionIDs, b.Scores, b.Flags, b.Commitment
		o := ChangeOutcome{Kind: KindRecast, Version: next.Version}
		applied, cur, err := s.changes.Change(ctx, &next, stored.Version, b.RequestID, o)
		switch {
		case err != nil:
			return Outcome{}, err
		case applied:
			s.m.outcomes.WithLabelValues("recast").Inc()
			s.audited(ctx, &next, o)
			return Outcome{Poll: p, Ballot: &next, New: true, Count: true}, nil
		case cur.Changes[b.RequestID] != (ChangeOutcome{}):
			s.m.outcomes.WithLabelValues("replayed").Inc()
			return Outcome{Poll: p, Ballot: cur}, nil
		}
		// Another request changed the row first: judge this one again
		// against the row as it is now (bounded by the change limit).
		stored = cur
	}
	s.m.outcomes.WithLabelValues("duplicate").Inc()
	return Outcome{Poll: p, Ballot: stored}, ErrAlreadyVoted
}
