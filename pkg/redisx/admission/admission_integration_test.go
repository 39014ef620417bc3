//go:build integration

package admission_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/redisx/admission"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

func limiter(cfg ratelimit.Config, rdb *redis.Client) *ratelimit.Limiter {
	return ratelimit.New(cfg, rdb, zap.NewNop(), time.Now, prometheus.NewRegistry())
}

func rule(l *ratelimit.Limiter, scope string) ratelimit.Rule {
	for _, r := range l.Rules(ratelimit.Vote) {
		if r.Scope == scope {
			return r
		}
	}
	panic("no vote rule " + scope)
}

func ballot(pollID id.ID) *vote.Ballot {
	return &vote.Ballot{PollID: pollID, VoterID: id.New(), RequestID: id.New()}
}

// The admission's GCRA reads and writes the same state as the library
// (redis_rate): hits through either count against one limit, and the
// script refuses with the same retry-after. Its limits are all-or-nothing:
// a refusal by one consumes none of the others.
func TestLimitsShareLibraryState(t *testing.T) {
	rdb := testenv.Redis(t)
	l := limiter(ratelimit.Config{VotesPerMinutePerUser: 4, VotesPerMinutePerIP: 2}, rdb)
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	acct := ratelimit.Hit{Rule: rule(l, ratelimit.ByAccount), Subject: uuid.NewString()}
	ip := ratelimit.Hit{Rule: rule(l, ratelimit.ByIP), Subject: uuid.NewString()}
	ctx := context.Background()
	check := func(hits ...ratelimit.Hit) (*ratelimit.Deferred, error) {
		d := l.Defer(ratelimit.Vote, hits...)
		return d, adm.Check(ctx, &vote.Admit{Ballot: ballot(id.New()), Limits: d})
	}

	// Two through the library on the account.
	for range 2 {
		if _, err := l.Allow(ctx, ratelimit.Vote, acct); err != nil {
			t.Fatal(err)
		}
	}
	// Two through the script on account and IP: the account has 2 left.
	for i := range 2 {
		d, err := check(acct, ip)
		if err != nil || !d.Decision.Allowed || d.Decision.Remaining != 1-i {
			t.Fatalf("script hit %d: %+v %v", i, d.Decision, err)
		}
	}
	// The account is spent: the script refuses, naming the account rule,
	// and the library agrees.
	_, err := check(acct)
	var lim *ratelimit.Limited
	if !errors.As(err, &lim) || lim.Decision.Rule.Scope != ratelimit.ByAccount {
		t.Fatalf("spent account through the script: %v", err)
	}
	if ra := lim.Decision.RetryAfter; ra <= 0 || ra > 15*time.Second {
		t.Fatalf("retry after %v, want at most a minute/4", ra)
	}
	if _, err := l.Allow(ctx, ratelimit.Vote, acct); !errors.As(err, &lim) {
		t.Fatalf("spent account through the library: %v", err)
	}
	// All-or-nothing: a fresh account with the spent IP is refused by the
	// IP rule and its own limit stays untouched (4 more pass).
	fresh := ratelimit.Hit{Rule: acct.Rule, Subject: uuid.NewString()}
	if _, err := check(fresh, ip); !errors.As(err, &lim) || lim.Decision.Rule.Scope != ratelimit.ByIP {
		t.Fatalf("spent IP: %v", err)
	}
	for i := range 4 {
		if d, err := l.Allow(ctx, ratelimit.Vote, fresh); err != nil || d.Remaining != 3-i {
			t.Fatalf("fresh account hit %d: %+v %v", i, d, err)
		}
	}
}

// Flag: a refused request (limit or bot rule) sets neither flag nor
// marker; an admitted one holds the pending flag and its marker; a voter
// whose flag is another request's queued one is a duplicate, while a
// pending one or the request's own lets it go on.
func TestFlag(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	l := limiter(ratelimit.Config{VotesPerMinutePerUser: 1}, rdb)
	bots := abuse.NewDetector(abuse.Config{IPBurst: 1, IPBurstWindow: time.Minute}, []byte("k"), time.Now, prometheus.NewRegistry())
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotReject}}
	ip := uuid.NewString()
	t.Cleanup(func() { rdb.Del(context.Background(), redisx.BotSignal(p.ID, abuse.RuleIPBurst, ip)) })
	flag := func(b *vote.Ballot) error {
		return adm.Flag(ctx, &vote.Admit{Ballot: b,
			Limits: l.Defer(ratelimit.Vote, ratelimit.Hit{Rule: rule(l, ratelimit.ByAccount), Subject: b.VoterID.String()}),
			Bots:   bots.For(p, abuse.Signals{IP: ip})})
	}
	get := func(key string) string { return rdb.Get(ctx, key).Val() }

	// Admitted: the pending flag and the marker (the poll id).
	first := ballot(p.ID)
	if err := flag(first); err != nil || first.Flags != nil {
		t.Fatalf("first: %v %v", first.Flags, err)
	}
	if v := get(redisx.VoterFlag(p.ID, first.VoterID)); v != redisx.FlagPending+first.RequestID.String() {
		t.Fatalf("flag %q", v)
	}
	if v := get(redisx.AcceptedRequest(p.ID, first.VoterID, first.RequestID)); v != p.ID.String() {
		t.Fatalf("marker %q", v)
	}
	// The voter's limit (1 a minute) is spent: refused, nothing set.
	again := &vote.Ballot{PollID: p.ID, VoterID: first.VoterID, RequestID: id.New()}
	if err := flag(again); !errors.Is(err, apperr.ErrRateLimited) {
		t.Fatalf("limited: %v", err)
	}
	if get(redisx.AcceptedRequest(p.ID, again.VoterID, again.RequestID)) != "" {
		t.Fatal("a rate-limited request was marked accepted")
	}
	// Another voter from the same IP trips ip_burst on a rejecting poll:
	// refused, no flag, no marker.
	second := ballot(p.ID)
	if err := flag(second); !errors.Is(err, abuse.ErrSuspicious) || !slices.Equal(second.Flags, nil) {
		t.Fatalf("suspicious: %v %v", second.Flags, err)
	}
	if get(redisx.VoterFlag(p.ID, second.VoterID)) != "" || get(redisx.AcceptedRequest(p.ID, second.VoterID, second.RequestID)) != "" {
		t.Fatal("a refused vote left a flag or a marker")
	}

	// Flag states, without limits or bot rules.
	// A pending flag is as old as the pending TTL (a minute) less its TTL.
	for _, tc := range []struct {
		name    string
		holder  func(b *vote.Ballot) string
		ttl     time.Duration
		wantErr error
	}{
		{"queued by another request", func(*vote.Ballot) string { return redisx.FlagQueued + uuid.NewString() }, time.Minute, vote.ErrAlreadyVoted},
		{"queued by this request (a retry)", func(b *vote.Ballot) string { return redisx.FlagQueued + b.RequestID.String() }, time.Minute, nil},
		{"pending for this request (a retry)", func(b *vote.Ballot) string { return redisx.FlagPending + b.RequestID.String() }, time.Minute, nil},
		// Undecided: never admitted over it, 503 after the bounded wait.
		{"pending for another request", func(*vote.Ballot) string { return redisx.FlagPending + uuid.NewString() }, time.Minute, vote.ErrVoteUndecided},
		// Older than any live request holds it: written through (the LWT decides).
		{"pending for another request, stale", func(*vote.Ballot) string { return redisx.FlagPending + uuid.NewString() }, 50 * time.Second, vote.ErrQueueUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ballot(p.ID)
			fk := redisx.VoterFlag(p.ID, b.VoterID)
			holder := tc.holder(b)
			rdb.Set(ctx, fk, holder, tc.ttl)
			t.Cleanup(func() { rdb.Del(context.Background(), fk) })
			err := adm.Flag(ctx, &vote.Admit{Ballot: b})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			want := holder
			if errors.Is(tc.wantErr, vote.ErrQueueUnavailable) {
				want = redisx.FlagPending + b.RequestID.String() // taken over to write through
			}
			if get(fk) != want {
				t.Fatalf("flag %q, want %q", get(fk), want)
			}
			marked := get(redisx.AcceptedRequest(p.ID, b.VoterID, b.RequestID)) != ""
			if marked != (tc.wantErr == nil) {
				t.Fatalf("marked %v", marked)
			}
		})
	}
}

// A pending flag is judged stale by the time since its request was last
// seen: a retry of the request restarts the clock. A request that finds it
// stale takes it over atomically to write through, and the stale request,
// should its produce land after all, finds the flag taken when it marks it
// queued, so it does not answer 202 (chaos baseline saw that 202 refused
// late, behind the takeover's write-through).
func TestStaleFlagTakeOver(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	flags := admission.NewFlags(rdb, zap.NewNop())
	p := &poll.Poll{ID: id.New(), EndTime: time.Now().Add(time.Hour)}
	stale, other := ballot(p.ID), ballot(p.ID)
	other.VoterID = stale.VoterID
	fk := redisx.VoterFlag(p.ID, stale.VoterID)
	t.Cleanup(func() { rdb.Del(context.Background(), fk) })
	age := func() { rdb.Set(ctx, fk, redisx.FlagPending+stale.RequestID.String(), 50*time.Second) } // 10 s old

	age()
	if err := adm.Flag(ctx, &vote.Admit{Ballot: stale}); err != nil { // its client's retry
		t.Fatalf("retry over its own flag: %v", err)
	}
	if ttl := rdb.PTTL(ctx, fk).Val(); ttl < 55*time.Second {
		t.Fatalf("a retry left its pending flag's clock running: TTL %v", ttl)
	}
	if err := adm.Flag(ctx, &vote.Admit{Ballot: other}); !errors.Is(err, vote.ErrVoteUndecided) {
		t.Fatalf("over a flag its request just retried: %v, want undecided", err)
	}

	age()
	if err := adm.Flag(ctx, &vote.Admit{Ballot: other}); !errors.Is(err, vote.ErrQueueUnavailable) {
		t.Fatalf("over a stale flag: %v, want a write-through", err)
	}
	if v := rdb.Get(ctx, fk).Val(); v != redisx.FlagPending+other.RequestID.String() {
		t.Fatalf("flag %q after the takeover", v)
	}
	if m, err := flags.MarkQueued(ctx, p, stale); err != nil || m != vote.MarkOtherPending {
		t.Fatalf("the stale request's late mark: %v, %v; want other_pending", m, err)
	}
}

// Check counts the limits and bot signals and never touches the flag.
func TestCheckLeavesTheFlag(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	bots := abuse.NewDetector(abuse.Config{IPBurst: 1, IPBurstWindow: time.Minute}, []byte("k"), time.Now, prometheus.NewRegistry())
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotFlag}}
	ip := uuid.NewString()
	t.Cleanup(func() { rdb.Del(context.Background(), redisx.BotSignal(p.ID, abuse.RuleIPBurst, ip)) })
	for i, want := range [][]string{nil, {abuse.RuleIPBurst}} {
		b := ballot(p.ID)
		a := &vote.Admit{Ballot: b, Bots: bots.For(p, abuse.Signals{IP: ip})}
		if err := adm.Check(ctx, a); err != nil || !slices.Equal(b.Flags, want) {
			t.Fatalf("vote %d: flags %v, want %v (%v)", i, b.Flags, want, err)
		}
		if a.Bots.Pending() {
			t.Fatalf("vote %d: the check is still pending", i)
		}
		if n := rdb.Exists(ctx, redisx.VoterFlag(p.ID, b.VoterID), redisx.AcceptedRequest(p.ID, b.VoterID, b.RequestID)).Val(); n != 0 {
			t.Fatalf("vote %d: check set %d flag keys", i, n)
		}
	}
}

// Redis unreachable: a fail-open class passes with its bot check skipped
// (Flag answers ErrQueueUnavailable: with no flag to tell a duplicate, the
// vote is written through), a fail-closed one is 503 UNAVAILABLE.
func TestFailOpenAndClosed(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	bots := abuse.NewDetector(abuse.Config{IPBurst: 1, IPBurstWindow: time.Minute}, []byte("k"), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotReject}}
	for _, tc := range []struct {
		name       string
		failClosed []string
		want       error
	}{
		{"fail open", nil, nil},
		{"fail closed", []string{ratelimit.Vote}, ratelimit.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := limiter(ratelimit.Config{VotesPerMinutePerUser: 1, FailClosed: tc.failClosed}, rdb)
			for i, run := range []func(context.Context, *vote.Admit) error{adm.Flag, adm.Check} {
				b := ballot(p.ID)
				a := &vote.Admit{Ballot: b, Limits: l.Defer(ratelimit.Vote, ratelimit.Hit{Rule: rule(l, ratelimit.ByAccount), Subject: "a"}),
					Bots: bots.For(p, abuse.Signals{IP: "10.0.0.1"})}
				want := tc.want
				if want == nil && i == 0 {
					want = vote.ErrQueueUnavailable
				}
				err := run(ctx, a)
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("err %v, want %v", err, want)
				}
				if a.Limits.Pending() {
					t.Fatal("the limits are still pending")
				}
			}
		})
	}
}

// Retry tells the vote path when an earlier attempt of the same request
// may have queued a ballot, so the answer carries no receipt salt: the
// voter's flag is the request's own, or the flag is gone (expired, lost)
// but the request's marker is still there, accepted or forgotten (a shed
// produce whose message may land late). A first attempt, and another
// request, are not retries.
func TestFlagTellsARetry(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute}, zap.NewNop())
	flags := admission.NewFlags(rdb, zap.NewNop())
	p := &poll.Poll{ID: id.New()}
	flag := func(b *vote.Ballot) bool {
		t.Helper()
		a := &vote.Admit{Ballot: b}
		if err := adm.Flag(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.Retry
	}
	b := ballot(p.ID)
	fk, ak := redisx.VoterFlag(p.ID, b.VoterID), redisx.AcceptedRequest(p.ID, b.VoterID, b.RequestID)
	t.Cleanup(func() { rdb.Del(context.Background(), fk, ak) })
	if flag(b) {
		t.Fatal("a first attempt is a retry")
	}
	if !flag(b) {
		t.Fatal("an attempt finding its own pending flag is not a retry")
	}
	// The flag expired or was lost; the marker says an attempt was admitted.
	rdb.Del(ctx, fk)
	if !flag(b) {
		t.Fatal("an attempt after its flag expired is not a retry")
	}
	if ok, err := flags.Accepted(ctx, p.ID, b.VoterID, b.RequestID); err != nil || !ok {
		t.Fatalf("accepted %v %v", ok, err)
	}
	// Shed: the request is forgotten (not accepted), its marker kept.
	if err := flags.Forget(ctx, p.ID, b.VoterID, b.RequestID); err != nil {
		t.Fatal(err)
	}
	if ok, err := flags.Accepted(ctx, p.ID, b.VoterID, b.RequestID); err != nil || ok {
		t.Fatalf("a forgotten request is accepted: %v %v", ok, err)
	}
	if ttl := rdb.PTTL(ctx, ak).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("forgotten marker TTL %v, want its own (at most RequestTTL)", ttl)
	}
	rdb.Del(ctx, fk) // the pending flag expired before the retry
	if !flag(b) {
		t.Fatal("a retry after a shed attempt is not a retry")
	}
	// Forgetting a request never accepted sets no marker.
	other := ballot(p.ID)
	if err := flags.Forget(ctx, p.ID, other.VoterID, other.RequestID); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, redisx.AcceptedRequest(p.ID, other.VoterID, other.RequestID)).Val(); n != 0 {
		t.Fatal("Forget created a marker")
	}
	// Another request of the same voter, once the flag is released.
	if err := flags.Withdraw(ctx, p.ID, b.VoterID, b.RequestID); err != nil {
		t.Fatal(err)
	}
	if flag(&vote.Ballot{PollID: p.ID, VoterID: b.VoterID, RequestID: id.New()}) {
		t.Fatal("another request is a retry")
	}
}
