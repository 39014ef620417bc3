// Package admission runs the vote's admission in Redis: one embedded
// script (admit.lua) checks the route's rate limits, counts the bot
// signals and sets the voter's flag and the request's accepted marker in
// one round trip. Redis implements vote.Admission; Flags runs the flag's
// later moves (queued, released) for vote.Flags; pkg/app wires both. It
// lives apart from redisx because it imports the domain (vote, ratelimit
// and abuse import redisx for key names).
package admission

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/vote"
)

//go:embed admit.lua
var admitLua string

var admitScript = redis.NewScript(admitLua)

// Config tunes the admission's Redis state.
type Config struct {
	// PendingTTL bounds how long a flag whose produce never finished (the
	// API died) can stand; 0 means a minute.
	PendingTTL time.Duration
	// RequestTTL is how long a request id is remembered as accepted.
	RequestTTL time.Duration
	// PendingWait bounds how long a request that finds another request's
	// pending flag waits for it to settle before answering 503; 0 means
	// 250 ms.
	PendingWait time.Duration
	// PendingStale is the age past which another request's pending flag
	// is taken for one whose API died before producing (a live request
	// queues or writes through well within it): the vote is then written
	// through instead of answered 503. 0 means 5 s.
	PendingStale time.Duration
	// AutoPipeline runs the admission script through the client's
	// automatic pipeliner (redisx.Config.AutoPipeline).
	AutoPipeline bool
}

// Defaults of Config.
const (
	defaultPendingTTL   = time.Minute
	defaultPendingWait  = 250 * time.Millisecond
	defaultPendingStale = 5 * time.Second
)

// Redis runs the admission script; it implements vote.Admission.
type Redis struct {
	rdb *redis.Client
	// scripts runs admit.lua: rdb itself, or its automatic pipeliner, which
	// coalesces the concurrent votes' calls into one pipeline per round
	// trip (Script.Run's NOSCRIPT fallback still works there: each call's
	// error is its own, unlike in a Pipeline).
	scripts redis.Scripter
	cfg     Config
	log     *zap.Logger
}

var _ vote.Admission = (*Redis)(nil)

// New builds the admission on rdb.
func New(rdb *redis.Client, cfg Config, log *zap.Logger) *Redis {
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = defaultPendingTTL
	}
	if cfg.PendingWait <= 0 {
		cfg.PendingWait = defaultPendingWait
	}
	if cfg.PendingStale <= 0 {
		cfg.PendingStale = defaultPendingStale
	}
	var scripts redis.Scripter = rdb
	if cfg.AutoPipeline {
		ap, err := rdb.AutoPipeline()
		if err != nil {
			log.Warn("redis auto-pipelining unavailable; one round trip per vote", zap.Error(err))
		} else {
			scripts = ap
		}
	}
	return &Redis{rdb: rdb, scripts: scripts, cfg: cfg, log: log}
}

// The script's modes (ARGV[1]).
const (
	modeFlag  = "flag"
	modeCheck = "check"
)

// The admission's answers (the body's first element).
const (
	answerHeld    = 0 // {0, holder}: the voter already holds a flag
	answerAdmit   = 1 // {1, tripped[, earlier]}: admitted (flagged pending in mode flag)
	answerRefused = 2 // {2, tripped}: a bot rule refused the vote
)

// Flag implements vote.Admission: limits, bot signals, the voter's flag
// and the accepted marker. A voter whose flag another request holds is
// never admitted over it:
//   - queued → ErrAlreadyVoted (409);
//   - pending → Flag waits up to PendingWait for that request to settle;
//     then ErrVoteUndecided (503 + Retry-After) while the flag is younger
//     than PendingStale (a retry of that request restarts its clock), or,
//     once older (the API holding it most likely died before producing,
//     or its produce was shed), this request takes the flag over
//     atomically and gets ErrQueueUnavailable: the vote is written
//     through, and the conditional write answers 200 or 409 before the
//     client hears anything. The stale request, if its produce lands
//     after all, finds its flag taken when it marks it queued and answers
//     503, not 202 (vote.Flags.MarkQueued), so no 202 is given that could
//     fail later;
//   - released meanwhile (that request failed) → this one takes it.
//
// With Redis unreachable nothing can tell a duplicate before the write:
// ErrQueueUnavailable, and the vote is written through (200/409).
func (r *Redis) Flag(ctx context.Context, a *vote.Admit) error {
	holder, err := r.run(ctx, modeFlag, a)
	if err != nil || holder == "" {
		return err
	}
	rid := a.Ballot.RequestID.String()
	deadline := time.Now().Add(r.cfg.PendingWait)
	key := redisx.VoterFlag(a.Ballot.PollID, a.Ballot.VoterID)
	for {
		state, owner := splitFlag(holder)
		switch {
		case owner == rid || state == "":
			// This request's own flag (a retry), or one of the old
			// unprefixed form: the conditional write decides. An
			// earlier attempt was admitted, so this one's ballot may
			// replay it: its answer carries no receipt salt.
			a.Retry = true
			return nil
		case state == redisx.FlagQueued:
			return vote.ErrAlreadyVoted
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pendingPoll):
		}
		var (
			get  *redis.StringCmd
			pttl *redis.DurationCmd
		)
		_, perr := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			get, pttl = p.Get(ctx, key), p.PTTL(ctx, key)
			return nil
		})
		switch {
		case errors.Is(get.Err(), redis.Nil):
			// The other request failed and released the flag: this one
			// takes it, through the whole admission again (the limits
			// are already settled and are not counted twice).
			if holder, err = r.run(ctx, modeFlag, a); err != nil || holder == "" {
				return err
			}
			continue
		case perr != nil:
			return vote.ErrVoteUndecided
		}
		holder = get.Val()
		if state, _ := splitFlag(holder); state != redisx.FlagPending || time.Now().Before(deadline) {
			continue
		}
		if age := r.cfg.PendingTTL - pttl.Val(); pttl.Val() > 0 && age >= r.cfg.PendingStale {
			// Take the flag over before writing through, atomically: a
			// request whose produce succeeded after all then finds it
			// gone from under its mark and does not answer 202.
			took, terr := takeOver.Run(ctx, r.rdb, []string{key}, holder, redisx.FlagPending+rid,
				r.cfg.PendingTTL.Milliseconds()).Int()
			if terr != nil {
				return vote.ErrVoteUndecided
			}
			if took == 0 {
				continue // it moved: look again
			}
			r.log.Info("voter's pending flag is stale, taken over to write through",
				zap.Stringer("poll_id", a.Ballot.PollID), zap.String("holder", holder), zap.Duration("age", age))
			return errors.Join(vote.ErrQueueUnavailable, errStaleFlag)
		}
		return vote.ErrVoteUndecided
	}
}

// takeOver replaces a stale pending flag with this request's, if unchanged.
//
//go:embed take_over.lua
var takeOverLua string

var takeOver = redis.NewScript(takeOverLua)

// errStaleFlag: the voter's flag is another request's pending one, older
// than any live request holds it.
var errStaleFlag = errors.New("voter flag pending past PendingStale")

// pendingPoll is how often Flag looks at another request's pending flag.
const pendingPoll = 10 * time.Millisecond

// splitFlag reads a flag's value: its state prefix (FlagPending,
// FlagQueued, or "" for the old unprefixed form) and the request id.
func splitFlag(v string) (state, requestID string) {
	for _, st := range []string{redisx.FlagPending, redisx.FlagQueued} {
		if rest, ok := strings.CutPrefix(v, st); ok {
			return st, rest
		}
	}
	return "", v
}

// Check implements vote.Admission: the limits and bot signals still
// pending, nothing else.
func (r *Redis) Check(ctx context.Context, a *vote.Admit) error {
	_, err := r.run(ctx, modeCheck, a)
	return err
}

// run runs the script in mode and settles the limits and the bot check
// with its reply. It returns the flag's holder when the voter already had
// one.
func (r *Redis) run(ctx context.Context, mode string, a *vote.Admit) (holder string, err error) {
	keys, args := layout(mode, a, r.cfg)
	reply, rerr := admitScript.Run(ctx, r.scripts, keys, args...).Result()
	if rerr != nil {
		if err := a.Limits.Fail(rerr); err != nil {
			return "", err
		}
		r.log.Debug("redis fast path unavailable", zap.Error(rerr))
		a.Bots.Skip()
		if mode == modeFlag {
			return "", errors.Join(vote.ErrQueueUnavailable, rerr)
		}
		return "", nil
	}
	verdict, body, err := parse(reply)
	if err != nil {
		return "", err
	}
	if err := a.Limits.Settle(verdict); err != nil {
		return "", err
	}
	vals, _ := body.([]any)
	if len(vals) != 2 && len(vals) != 3 {
		return "", fmt.Errorf("admission: unexpected reply %v", reply)
	}
	switch code, _ := vals[0].(int64); code {
	case answerAdmit:
		if len(vals) == 3 {
			// The request's marker was there without a flag: an earlier
			// attempt may have queued a ballot.
			earlier, _ := vals[2].(int64)
			a.Retry = a.Retry || earlier == 1
		}
		flags, err := a.Bots.Settle(names(vals[1]), false)
		if flags != nil {
			a.Ballot.Flags = flags
		}
		return "", err
	case answerRefused:
		_, err := a.Bots.Settle(names(vals[1]), true)
		return "", err
	case answerHeld:
		if mode == modeFlag {
			holder, _ := vals[1].(string)
			return holder, nil
		}
	}
	return "", fmt.Errorf("admission: unexpected reply %v", reply)
}

// layout builds the script's keys and arguments, in the order admit.lua
// documents: the limits, the flag, the bot counters.
func layout(mode string, a *vote.Admit, cfg Config) (keys []string, args []any) {
	b := a.Ballot
	lk, bk := a.Limits.Keys(), a.Bots.Keys()
	keys = make([]string, 0, len(lk)+2+len(bk))
	keys = append(keys, lk...)
	keys = append(keys, redisx.VoterFlag(b.PollID, b.VoterID), redisx.AcceptedRequest(b.PollID, b.VoterID, b.RequestID))
	keys = append(keys, bk...)
	la, ba := a.Limits.Args(), a.Bots.Args()
	args = make([]any, 0, 1+len(la)+4+len(ba))
	args = append(args, mode)
	args = append(args, la...)
	args = append(args, b.RequestID.String(), cfg.PendingTTL.Milliseconds(), b.PollID.String(), cfg.RequestTTL.Milliseconds())
	args = append(args, ba...)
	return keys, args
}

// parse reads the reply's limit verdict and the admission's body.
func parse(reply any) (ratelimit.Verdict, any, error) {
	vals, ok := reply.([]any)
	if !ok || len(vals) < 6 {
		return ratelimit.Verdict{}, nil, fmt.Errorf("admission: unexpected reply %v", reply)
	}
	allowed, _ := vals[0].(int64)
	idx, _ := vals[1].(int64)
	remaining, _ := vals[4].(int64)
	v := ratelimit.Verdict{Allowed: allowed == 1, Rule: int(idx), Remaining: int(remaining),
		RetryAfter: seconds(vals[2]), Reset: seconds(vals[3])}
	return v, vals[5], nil
}

// seconds reads a duration the script replied as a string of seconds
// (Lua numbers lose their fraction in a reply); negative is none.
func seconds(v any) time.Duration {
	s, _ := v.(string)
	f, _ := strconv.ParseFloat(s, 64)
	if f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// names reads the rule names the script replied.
func names(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
