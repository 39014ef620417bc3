//go:build integration

package poll_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/testenv"
)

// Two services on one keyspace and the real Redis, as two processes are:
// a poll created through one is found by the other although it was
// remembered as missing there, and a close through one reaches the other's
// view through the notice, long before the view's refresh period.
func TestChangeNoticesReachAnotherProcess(t *testing.T) {
	s, ccfg := testenv.Cassandra(t)
	store := cassandra.NewPollStore(s, ccfg)
	cfg := poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Minute, StaleIfError: time.Minute,
		NegativeTTL: time.Minute}
	mk := func() *poll.Service {
		svc := poll.NewService(cfg, poll.Deps{Store: store, Log: testenv.Logger(t), Now: time.Now,
			Changes: redisx.NewPollChanges(testenv.Redis(t), testenv.Logger(t))})
		t.Cleanup(svc.Close)
		return svc
	}
	a, b := mk(), mk()
	ctx := context.Background()
	owner := id.New()
	p, _, err := a.Create(ctx, owner, poll.CreateInput{Title: "notices",
		Options: []poll.OptionInput{{Text: "a"}, {Text: "b"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	// b's first read starts its subscription.
	if _, _, err := b.View(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // subscribed

	missing := id.New()
	if _, _, err := b.View(ctx, missing); !errors.Is(err, poll.ErrNotFound) {
		t.Fatalf("unknown poll: %v", err)
	}
	// The poll appears under that id, as a create through another
	// process: its notice ends b's memory of the id as missing.
	q := *p
	q.ID, q.Options = missing, []poll.Option{{ID: id.New(), Text: "x"}, {ID: id.New(), Text: "y", DisplayOrder: 1}}
	if err := store.Create(ctx, &q); err != nil {
		t.Fatal(err)
	}
	if err := redisx.NewPollChanges(testenv.Redis(t), testenv.Logger(t)).Publish(ctx, missing); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, func() error {
		_, _, err := b.View(ctx, missing)
		return err
	})

	if _, err := a.Update(ctx, owner, p.ID, poll.Patch{Close: true}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	testenv.Eventually(t, time.Second, func() error {
		got, _, err := b.View(ctx, p.ID)
		if err != nil {
			return err
		}
		if got.ClosedAt.IsZero() {
			return fmt.Errorf("b's view is still open %s after the close", time.Since(changed).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("close reached the other service's view within %s", time.Since(changed).Round(time.Millisecond))
}
