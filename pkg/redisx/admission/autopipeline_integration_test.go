//go:build integration

package admission_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/redisx/admission"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestAutoPipelinedAdmission: with the admission script sent through
// go-redis's automatic pipeliner, concurrent votes are admitted exactly as
// one by one — right after the script cache was flushed (a Redis restart:
// the NOSCRIPT fallback must still work per call) — and one voter's
// concurrent requests get one admission, the rest wait and are refused.
func TestAutoPipelinedAdmission(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hook := &countingHook{}
	rdb.AddHook(hook)
	l := limiter(ratelimit.Config{VotesPerMinutePerUser: 1000}, rdb)
	bots := abuse.NewDetector(abuse.Config{}, []byte("k"), time.Now, prometheus.NewRegistry())
	adm := admission.New(rdb, admission.Config{RequestTTL: time.Minute, PendingWait: 50 * time.Millisecond, AutoPipeline: true}, zap.NewNop())
	p := &poll.Poll{ID: id.New()}
	flag := func(b *vote.Ballot) error {
		return adm.Flag(ctx, &vote.Admit{Ballot: b,
			Limits: l.Defer(ratelimit.Vote, ratelimit.Hit{Rule: rule(l, ratelimit.ByAccount), Subject: b.VoterID.String()}),
			Bots:   bots.For(p, abuse.Signals{})})
	}

	const voters, sameVoter = 300, 20
	shared := id.New()
	var (
		wg                          sync.WaitGroup
		mu                          sync.Mutex
		admitted, sharedAdmitted, n int
		undecided                   int
	)
	for i := range voters + sameVoter {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := ballot(p.ID)
			if i >= voters {
				b.VoterID = shared
			}
			err := flag(b)
			mu.Lock()
			defer mu.Unlock()
			n++
			switch {
			case err == nil && i < voters:
				admitted++
				if v := rdb.Get(ctx, redisx.VoterFlag(p.ID, b.VoterID)).Val(); v != redisx.FlagPending+b.RequestID.String() {
					t.Errorf("voter %d: flag %q", i, v)
				}
			case err == nil:
				sharedAdmitted++
			case errors.Is(err, vote.ErrVoteUndecided) && i >= voters:
				undecided++
			default:
				t.Errorf("request %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	hook.mu.Lock()
	t.Logf("%d admission calls went as %d pipelines carrying %d commands", voters+sameVoter, hook.pipelines, hook.cmds)
	if hook.pipelines == 0 || hook.pipelines*2 > voters {
		t.Errorf("%d pipelines for %d concurrent votes: not coalesced", hook.pipelines, voters)
	}
	hook.mu.Unlock()
	if admitted != voters || sharedAdmitted != 1 || undecided != sameVoter-1 {
		t.Fatalf("%d of %d voters admitted; one voter's %d requests: %d admitted, %d undecided (want all, 1, %d)",
			admitted, voters, sameVoter, sharedAdmitted, undecided, sameVoter-1)
	}
}

// countingHook counts the pipelines the client sends and their commands.
type countingHook struct {
	mu              sync.Mutex
	pipelines, cmds int
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.pipelines++
		h.cmds += len(cmds)
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}
