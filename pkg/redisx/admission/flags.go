package admission

import (
	"context"
	_ "embed"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/vote"
)

// Flags runs the voter-flag scripts after the admission set the flag
// pending: queued once the ballot is durably queued or recorded, released
// when the request will never produce a ballot. It implements vote.Flags.
type Flags struct {
	rdb *redis.Client
	log *zap.Logger
	// marks feeds markLoop; marking is true while it runs.
	marks   chan mark
	marking atomic.Bool
}

var _ vote.Flags = (*Flags)(nil)

// NewFlags builds the flag runner on rdb.
func NewFlags(rdb *redis.Client, log *zap.Logger) *Flags {
	return &Flags{rdb: rdb, log: log, marks: make(chan mark, 8*markBatch)}
}

// releaseFlag deletes the voter's flag only if it still holds this
// request, in whatever state (the flag's values: redisx.VoterFlag).
//
//go:embed release_flag.lua
var releaseFlagLua string

var releaseFlag = redis.NewScript(releaseFlagLua)

// Release frees a voter whose request will never produce a ballot (a
// poison message, a vote refused at apply time), so they can vote again.
func (f *Flags) Release(ctx context.Context, pollID, voterID, requestID id.ID) error {
	return releaseFlag.Run(ctx, f.rdb, []string{redisx.VoterFlag(pollID, voterID)}, requestID.String()).Err()
}

// Withdraw releases the voter's flag as Release does and forgets the
// request's accepted marker, in one round trip: the request was answered
// with an error (shed, or its write-through failed), so a retry after the
// close must not be answered as accepted.
func (f *Flags) Withdraw(ctx context.Context, pollID, voterID, requestID id.ID) error {
	keys := []string{redisx.VoterFlag(pollID, voterID), redisx.AcceptedRequest(pollID, voterID, requestID)}
	return releaseFlag.Run(ctx, f.rdb, keys, requestID.String()).Err()
}

// Forget un-accepts the request and leaves the voter's flag: the request
// was answered with an error, but whether its ballot will be recorded is
// not known yet. Its marker stays, as forgottenMarker until it expires,
// so Accepted says no while the admission still knows an earlier attempt
// may have queued a ballot: a retry's answer then carries no receipt salt,
// which would not open that ballot's commitment (vote.Admit.Retry).
func (f *Flags) Forget(ctx context.Context, pollID, voterID, requestID id.ID) error {
	err := f.rdb.SetArgs(ctx, redisx.AcceptedRequest(pollID, voterID, requestID), forgottenMarker,
		redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if errors.Is(err, redis.Nil) {
		return nil // no marker: nothing was accepted to forget
	}
	return err
}

// forgottenMarker is the value of a forgotten request's marker (admit.lua
// reads any value as "an earlier attempt was admitted").
const forgottenMarker = "?"

// acceptedChangeTTL is how long a queued change's accepted marker lives.
const acceptedChangeTTL = 24 * time.Hour

// MarkAccepted sets a request's accepted marker alone (a queued change of
// a ballot, which has no admission of its own): its status reads pending
// until the worker applies it (vote.AcceptMarker).
func (f *Flags) MarkAccepted(ctx context.Context, pollID, voterID, requestID id.ID) error {
	return f.rdb.Set(ctx, redisx.AcceptedRequest(pollID, voterID, requestID), "1", acceptedChangeTTL).Err()
}

// Holds reports whether the voter's flag is held: a request of the voter
// is pending, queued or recorded (vote.FlagHolder).
func (f *Flags) Holds(ctx context.Context, pollID, voterID id.ID) (bool, error) {
	n, err := f.rdb.Exists(ctx, redisx.VoterFlag(pollID, voterID)).Result()
	return n == 1, err
}

// Accepted reports whether the request was accepted for the voter.
func (f *Flags) Accepted(ctx context.Context, pollID, voterID, requestID id.ID) (bool, error) {
	v, err := f.rdb.Get(ctx, redisx.AcceptedRequest(pollID, voterID, requestID)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil && v != forgottenMarker, err
}

// MarkQueued makes the voter's flag this request's queued one, once its
// ballot is durably queued, and says what it found (vote.Mark): only the
// request's own pending flag is replaced. Where there is no flag it sets
// none: the worker may have refused the vote and released the flag before
// this mark ran, and a queued flag then would lock the voter out. Marks of
// concurrent votes go to Redis in one pipeline; MarkQueued waits for its
// own.
func (f *Flags) MarkQueued(ctx context.Context, p *poll.Poll, b *vote.Ballot) (vote.Mark, error) {
	done := make(chan markReply, 1)
	f.mark(p, b, "pending", done)
	select {
	case r := <-done:
		return r.mark, r.err
	case <-ctx.Done():
		return vote.MarkUnknown, ctx.Err()
	}
}

// MarkRecorded records that the voter's ballot is written (a direct
// write): the flag becomes this request's queued one whether or not a
// flag is there, unless another request's queued flag is. It does not
// wait.
func (f *Flags) MarkRecorded(p *poll.Poll, b *vote.Ballot) {
	f.mark(p, b, "any", nil)
}

func (f *Flags) mark(p *poll.Poll, b *vote.Ballot, over string, done chan markReply) {
	ttl := time.Until(p.EndTime) + time.Hour
	ttl = min(max(ttl, time.Hour), 90*24*time.Hour)
	m := mark{key: redisx.VoterFlag(b.PollID, b.VoterID), requestID: b.RequestID.String(),
		ttlMs: ttl.Milliseconds(), over: over, done: done}
	select {
	case f.marks <- m:
		if f.marking.CompareAndSwap(false, true) {
			go f.markLoop()
		}
	default:
		// The batcher is that far behind: this one goes alone.
		go f.flushMarks([]mark{m})
	}
}

// mark is one queued flag to set; over is what it may replace (see
// mark_queued.lua); done, when set, gets what the script found.
type mark struct {
	key, requestID, over string
	ttlMs                int64
	done                 chan markReply
}

// markReply is one mark's outcome.
type markReply struct {
	mark vote.Mark
	err  error
}

// markBatch bounds one pipeline of marks.
const markBatch = 256

// markLoop sends the marks queued in the meantime as one pipeline, over and
// over, and ends after a quiet second (the next mark starts it again). At
// thousands of votes a second this turns a round trip and a goroutine per
// vote into one pipeline every few milliseconds.
func (f *Flags) markLoop() {
	batch := make([]mark, 0, markBatch)
	for {
		select {
		case m := <-f.marks:
			batch = append(batch[:0], m)
		case <-time.After(time.Second):
			f.marking.Store(false)
			// A mark queued between the timeout and the flag reset must
			// not wait for the next one: take over again if so.
			if len(f.marks) > 0 && f.marking.CompareAndSwap(false, true) {
				continue
			}
			return
		}
	fill:
		for len(batch) < markBatch {
			select {
			case m := <-f.marks:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		f.flushMarks(batch)
	}
}

// flushMarks runs the markQueued script for each mark in one pipeline and
// answers each mark that waits.
func (f *Flags) flushMarks(marks []mark) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	run := func(sha bool) ([]redis.Cmder, error) {
		pipe := f.rdb.Pipeline()
		for _, m := range marks {
			if sha {
				markQueued.EvalSha(ctx, pipe, []string{m.key}, m.requestID, m.ttlMs, m.over)
			} else {
				markQueued.Eval(ctx, pipe, []string{m.key}, m.requestID, m.ttlMs, m.over)
			}
		}
		return pipe.Exec(ctx)
	}
	cmds, err := run(true)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// First use on this Redis (or after its restart): send the body.
		cmds, err = run(false)
	}
	if err != nil {
		f.log.Debug("mark vote flags queued", zap.Int("marks", len(marks)), zap.Error(err))
	}
	for i, m := range marks {
		if m.done == nil {
			continue
		}
		r := markReply{mark: vote.MarkUnknown, err: err}
		if i < len(cmds) {
			if n, cerr := cmds[i].(*redis.Cmd).Int64(); cerr == nil {
				r = markReply{mark: markOf(n)}
			} else {
				r.err = cerr
			}
		}
		m.done <- r
	}
}

// markOf reads mark_queued.lua's reply.
func markOf(n int64) vote.Mark {
	switch n {
	case 0:
		return vote.MarkGone
	case 1:
		return vote.MarkQueued
	case 2:
		return vote.MarkOtherPending
	case 3:
		return vote.MarkOtherQueued
	}
	return vote.MarkUnknown
}

// markQueued marks the voter's flag queued for a request (see its header).
//
//go:embed mark_queued.lua
var markQueuedLua string

var markQueued = redis.NewScript(markQueuedLua)
