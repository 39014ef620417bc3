//go:build integration

package poll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/testenv"
)

// A change of the counting method and a vote's freeze of the options race
// on the poll's partition, and exactly one wins: a vote checked against the
// poll before the change fails its freeze (and is checked again), and a
// change judged before a vote froze the options loses its condition.
func TestMethodChangeAndFreezeExcludeEachOther(t *testing.T) {
	s, ccfg := testenv.Cassandra(t)
	store := cassandra.NewPollStore(s, ccfg)
	svc := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Minute},
		poll.Deps{Store: store, Log: testenv.Logger(t), Now: time.Now})
	ctx := context.Background()
	owner := id.New()
	create := func() *poll.Poll {
		t.Helper()
		// A draft: no row can exist, so only the freeze decides.
		start := time.Now().Add(time.Hour)
		p, _, err := svc.Create(ctx, owner, poll.CreateInput{Title: "m", StartTime: &start,
			Options: []poll.OptionInput{{Text: "a"}, {Text: "b"}, {Text: "c"}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ranked := count.Ranked
	toRanked := poll.Patch{Settings: &poll.SettingsPatch{Method: &ranked}}

	// The change first: the vote's freeze, checked against plurality, fails.
	p := create()
	changed, err := svc.Update(ctx, owner, p.ID, toRanked)
	if err != nil || changed.Settings.CountingMethod() != count.Ranked || changed.OptionsVersion != p.OptionsVersion+1 {
		t.Fatalf("change: %+v, %v", changed, err)
	}
	if ok, err := store.FreezeOptions(ctx, p.ID, p.OptionsVersion); ok || err != nil {
		t.Fatalf("a freeze against the old method applied: %v, %v", ok, err)
	}

	// The freeze first: a change judged on the unfrozen poll loses its
	// condition, and judged again it is refused as frozen.
	p = create()
	if ok, err := store.FreezeOptions(ctx, p.ID, p.OptionsVersion); !ok || err != nil {
		t.Fatalf("freeze: %v, %v", ok, err)
	}
	v, m := p.OptionsVersion, poll.SettingsPatch{Method: &ranked}
	err = store.Update(ctx, p.ID, poll.Change{Version: p.Version, Settings: &m, OptionsVersion: &v, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if !errors.Is(err, poll.ErrChangedSince) {
		t.Fatalf("a method change over a freeze: %v", err)
	}
	if _, err := svc.Update(ctx, owner, p.ID, toRanked); !errors.Is(err, poll.ErrMethodFrozen) {
		t.Fatalf("judged again: %v", err)
	}
	got, err := store.Get(ctx, p.ID)
	if err != nil || got.Settings.CountingMethod() != count.Plurality {
		t.Fatalf("stored method %v, %v", got.Settings.CountingMethod(), err)
	}
}
