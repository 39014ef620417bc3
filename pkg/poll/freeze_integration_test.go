//go:build integration

package poll_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/testenv"
)

// countingStore is the real Cassandra poll store; it only counts the
// freezes that reach Cassandra.
type countingStore struct {
	*cassandra.PollStore
	freezes atomic.Int64
}

func (c *countingStore) FreezeOptions(ctx context.Context, id id.ID, version int) (bool, error) {
	c.freezes.Add(1)
	return c.PollStore.FreezeOptions(ctx, id, version)
}

// The first votes of a viral poll arrive together. Each one freezing the
// options with its own LWT on the poll's partition made them contend in
// Paxos for seconds (p50 12 s at 2,500 votes/s in the bench); concurrent
// callers now share one freeze.
func TestFirstVotesOfAPollShareOneFreeze(t *testing.T) {
	s, ccfg := testenv.Cassandra(t)
	store := &countingStore{PollStore: cassandra.NewPollStore(s, ccfg)}
	svc := poll.NewService(poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: time.Minute},
		poll.Deps{Store: store, Log: testenv.Logger(t), Now: time.Now})
	ctx := context.Background()
	p, _, err := svc.Create(ctx, id.New(), poll.CreateInput{Title: "viral",
		Options: []poll.OptionInput{{Text: "a"}, {Text: "b"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	viewed, _, err := svc.View(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	const voters = 300
	var wg sync.WaitGroup
	errs := make(chan error, voters)
	start := time.Now()
	for range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- svc.FreezeOptions(ctx, viewed)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("freeze: %v", err)
		}
	}
	took := time.Since(start)
	if n := store.freezes.Load(); n > 3 {
		t.Fatalf("%d concurrent first votes ran %d freezes on one partition (want one shared; took %s)", voters, n, took)
	}
	got, err := store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OptionsFrozen {
		t.Fatal("options not frozen after the shared freeze")
	}
	t.Logf("%d concurrent freezes: %d LWT(s), %s", voters, store.freezes.Load(), took)
}
