package observe

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/redisx"
)

// TestActivePollsBoundsPendingSightings: a process that is never scraped
// keeps at most the polls seen within the window once past pendingCap.
func TestActivePollsBoundsPendingSightings(t *testing.T) {
	now := time.Unix(1000, 0)
	a := &ActivePolls{cfg: ActivePollsConfig{Window: time.Minute}, now: func() time.Time { return now },
		pending: map[id.ID]time.Time{}}
	for range pendingCap {
		a.Seen(id.New())
	}
	now = now.Add(2 * time.Minute) // every poll so far went idle
	fresh := id.New()
	a.Seen(fresh)
	if len(a.pending) != 1 {
		t.Fatalf("pending holds %d polls, want only the fresh one", len(a.pending))
	}
	if _, ok := a.pending[fresh]; !ok {
		t.Fatal("the fresh sighting was dropped")
	}
}

// TestActivePollsKeepsSightingsWhileRedisIsDown: a scrape that cannot
// reach Redis (nothing listens on port 1) fails and puts its sightings
// back for the next one, minus those idle past the window.
func TestActivePollsKeepsSightingsWhileRedisIsDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	now := time.Unix(1000, 0)
	a := NewActivePolls(prometheus.NewRegistry(), redisx.NewActivePollSet(rdb, "polls:active:unit", time.Minute),
		ActivePollsConfig{Window: time.Minute},
		zap.NewNop(), func() time.Time { return now })
	old, recent := id.New(), id.New()
	a.Seen(old)
	now = now.Add(50 * time.Second)
	a.Seen(recent)
	now = now.Add(20 * time.Second) // old idle 70 s, recent 20 s
	if _, err := a.Count(context.Background()); err == nil {
		t.Fatal("Count succeeded with no Redis")
	}
	if _, ok := a.pending[recent]; !ok || len(a.pending) != 1 {
		t.Fatalf("pending after the failed scrape = %v, want only %s", a.pending, recent)
	}
}
