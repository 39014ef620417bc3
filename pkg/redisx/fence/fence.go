// Package fence is the reconciliation fence on Redis: the follow-up
// writers of pkg/vote enter it (vote.Fence) and pkg/tally's reconciliation
// raises it (tally.Fence) while it measures a poll.
package fence

import (
	"context"
	_ "embed"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/retry"
	"github.com/tally-vote/tally/pkg/tally"
)

// The reconciliation fence. Counters and index rows are written by
// follow-ups in two steps, so a measurement taken while follow-ups of the
// poll are in flight sees votes counted but not yet indexed and reports
// drift that is not there. The fence removes that race for one poll at a
// time:
//
//   - a follow-up writer adds itself to the set recon:busy:{poll} (scored
//     by when its claim expires), then reads recon:fence:{poll}; if a fence
//     is up it removes itself and waits, else it writes and removes itself
//     when done;
//   - a reconciliation sets the fence, then waits until the set holds no
//     unexpired writer, then measures, then lifts the fence.
//
// Both sides use one Redis, whose commands are totally ordered, so either
// the writer sees the fence or the reconciliation sees the writer. A
// writer's claim is short and renewed while it writes, so one that crashed
// (a SIGKILLed worker) holds a poll for at most busyTTL — well within the
// reconciliation's quiesceWithin — however long live writes may take.
//
// With Redis unreachable writers do not wait, and a reconciliation cannot
// fence: it measures and reports but does not repair (see Reconcile).

const (
	busyTTL       = 3 * time.Second
	fenceTTL      = 15 * time.Second
	quiesceWithin = 10 * time.Second
)

// Redis implements vote.Fence and tally.Fence.
type Redis struct{ rdb *redis.Client }

// New builds the fence.
func New(rdb *redis.Client) *Redis { return &Redis{rdb: rdb} }

// Enter marks the polls busy, waiting while any of them is fenced.
func (f *Redis) Enter(ctx context.Context, polls []id.ID) (func(), error) {
	noop := func() {}
	for {
		pipe := f.rdb.Pipeline()
		fences := make([]*redis.IntCmd, len(polls))
		me := id.New().String()
		until := float64(time.Now().Add(busyTTL).UnixMilli())
		for i, id := range polls {
			pipe.ZAdd(ctx, redisx.FollowUpsBusy(id), redis.Z{Score: until, Member: me})
			pipe.Expire(ctx, redisx.FollowUpsBusy(id), 2*busyTTL)
			fences[i] = pipe.Exists(ctx, redisx.ReconcileFence(id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// Redis is an accelerator here too: write without the fence.
			return noop, nil
		}
		fenced := false
		for _, c := range fences {
			fenced = fenced || c.Val() > 0
		}
		bg := context.WithoutCancel(ctx)
		remove := func() {
			pipe := f.rdb.Pipeline()
			for _, id := range polls {
				pipe.ZRem(bg, redisx.FollowUpsBusy(id), me)
			}
			_, _ = pipe.Exec(bg)
		}
		if !fenced {
			renew, stop := context.WithCancel(bg)
			go f.renew(renew, polls, me)
			return func() { stop(); remove() }, nil
		}
		remove()
		if err := retry.Sleep(ctx, 20*time.Millisecond); err != nil {
			return noop, err
		}
	}
}

// renew keeps a writer's claims alive until ctx ends.
func (f *Redis) renew(ctx context.Context, polls []id.ID, me string) {
	retry.Every(ctx, busyTTL/3, func() {
		until := float64(time.Now().Add(busyTTL).UnixMilli())
		pipe := f.rdb.Pipeline()
		for _, id := range polls {
			pipe.ZAddXX(ctx, redisx.FollowUpsBusy(id), redis.Z{Score: until, Member: me})
			pipe.Expire(ctx, redisx.FollowUpsBusy(id), 2*busyTTL)
		}
		_, _ = pipe.Exec(ctx)
	})
}

// liftFence deletes the fence only if it still holds this token.
//
//go:embed lift_fence.lua
var liftFenceLua string

var liftFence = redis.NewScript(liftFenceLua)

// Raise puts the fence up and waits until no follow-up writer of the poll
// is in flight. It returns lift, to call when the measurement is done; the
// fence is kept alive while held. Another reconciliation's fence is
// tally.ErrBusy.
func (f *Redis) Raise(ctx context.Context, pollID id.ID) (lift func(), err error) {
	token := id.New().String()
	key := redisx.ReconcileFence(pollID)
	ok, err := f.rdb.SetNX(ctx, key, token, fenceTTL).Result()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, tally.ErrBusy
	}
	keep, stop := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		t := time.NewTicker(fenceTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-keep.Done():
				return
			case <-t.C:
				f.rdb.Expire(keep, key, fenceTTL)
			}
		}
	}()
	lift = func() {
		stop()
		liftFence.Run(context.WithoutCancel(ctx), f.rdb, []string{key}, token)
	}
	deadline := time.Now().Add(quiesceWithin)
	for {
		busy := redisx.FollowUpsBusy(pollID)
		pipe := f.rdb.Pipeline()
		pipe.ZRemRangeByScore(ctx, busy, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10))
		card := pipe.ZCard(ctx, busy)
		_, err := pipe.Exec(ctx)
		if err == nil && card.Val() == 0 {
			return lift, nil
		}
		if err != nil || time.Now().After(deadline) {
			lift()
			if err == nil {
				err = errors.New("follow-up writers did not finish within " + quiesceWithin.String())
			}
			return nil, err
		}
		if err := retry.Sleep(ctx, 10*time.Millisecond); err != nil {
			lift()
			return nil, err
		}
	}
}
