//go:build integration

package admission_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/redisx/admission"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// The flag's later moves on the real Redis: MarkQueued turns only its own
// request's pending flag into a queued one and says what it found
// otherwise; Release deletes the flag only while it holds this request.
func TestFlagsMarkAndRelease(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	f := admission.NewFlags(rdb, zap.NewNop())
	p := &poll.Poll{ID: id.New(), EndTime: time.Now().Add(time.Hour)}
	first, second := ballot(p.ID), ballot(p.ID)
	second.VoterID = first.VoterID
	key := redisx.VoterFlag(p.ID, first.VoterID)
	get := func() string { v, _ := rdb.Get(ctx, key).Result(); return v }
	mark := func(b *vote.Ballot, want vote.Mark) {
		t.Helper()
		if m, err := f.MarkQueued(ctx, p, b); err != nil || m != want {
			t.Fatalf("mark: %v, %v; want %v", m, err, want)
		}
	}

	rdb.Set(ctx, key, redisx.FlagPending+second.RequestID.String(), time.Minute)
	mark(first, vote.MarkOtherPending)
	if v := get(); v != redisx.FlagPending+second.RequestID.String() {
		t.Fatalf("a request's mark replaced another's pending flag: %q", v)
	}
	mark(second, vote.MarkQueued)
	mark(second, vote.MarkQueued) // a repeated mark
	mark(first, vote.MarkOtherQueued)
	if v := get(); v != redisx.FlagQueued+second.RequestID.String() {
		t.Fatalf("flag %q after marking", v)
	}
	if err := f.Release(ctx, p.ID, first.VoterID, first.RequestID); err != nil {
		t.Fatal(err)
	}
	if v := get(); v == "" {
		t.Fatal("released by a request that does not hold the flag")
	}
	if err := f.Release(ctx, p.ID, first.VoterID, second.RequestID); err != nil {
		t.Fatal(err)
	}
	if v := get(); v != "" {
		t.Fatalf("flag %q after its request released it", v)
	}
	if ok, err := f.Accepted(ctx, p.ID, first.VoterID, first.RequestID); err != nil || ok {
		t.Fatalf("accepted %v, %v for a request never admitted", ok, err)
	}
}

// TestLateMarkAfterReleaseLocksNobodyOut runs the worker's release of a
// refused vote before the API's queued mark of the same request (the mark
// is batched off the answer path, so it can come second). Before the fix
// the mark found no flag and set a queued one for the poll's lifetime: the
// voter, who has no ballot, was answered 409 from then on. A direct write's
// MarkRecorded still sets the flag where there is none.
func TestLateMarkAfterReleaseLocksNobodyOut(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	f := admission.NewFlags(rdb, zap.NewNop())
	p := &poll.Poll{ID: id.New(), EndTime: time.Now().Add(time.Hour)}
	b := ballot(p.ID)
	key := redisx.VoterFlag(p.ID, b.VoterID)
	rdb.Set(ctx, key, redisx.FlagPending+b.RequestID.String(), time.Minute)
	if err := f.Release(ctx, p.ID, b.VoterID, b.RequestID); err != nil { // the worker refused it
		t.Fatal(err)
	}
	if m, err := f.MarkQueued(ctx, p, b); err != nil || m != vote.MarkGone { // the API's late mark
		t.Fatalf("late mark: %v, %v", m, err)
	}
	if v, _ := rdb.Get(ctx, key).Result(); v != "" {
		t.Fatalf("a late mark locked the voter out: flag %q after the release", v)
	}
	f.MarkRecorded(p, b)
	testenv.Eventually(t, 5*time.Second, func() error {
		if v, _ := rdb.Get(ctx, key).Result(); v != redisx.FlagQueued+b.RequestID.String() {
			return fmt.Errorf("flag %q after a recorded ballot", v)
		}
		return nil
	})
}
