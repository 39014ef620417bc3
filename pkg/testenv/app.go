package testenv

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax/votes"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// ReceiptSeed is the tests' receipt signing key: RFC 8032 §7.1 TEST 1's
// seed, so its public key and kid are published values a test can pin.
const ReceiptSeed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="

// Config is a whole-process configuration on the local stack with a fresh
// migrated keyspace, fresh topics, cheap password hashing and rate limits
// loose enough for tests that send everything from 127.0.0.1.
func Config(t testing.TB) config.Config {
	t.Helper()
	_, cass := Cassandra(t)
	return config.Config{
		Env:          "dev",
		HTTPAddr:     "127.0.0.1:0",
		WorkerAddr:   "127.0.0.1:0",
		PublicURL:    "http://tally.test",
		LogLevel:     "warn",
		JWTSecret:    "test-secret-0123456789abcdef0123456789",
		LiveBackstop: time.Second, LiveNoticeEvery: 100 * time.Millisecond,
		Cassandra: cass,
		Redis: redisx.Config{Addr: envOr("TALLY_REDIS_ADDR", "127.0.0.1:6380"), PoolSize: 64,
			DialTimeout: 300 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second},
		Kafka:     Kafka(t),
		Auth:      auth.Config{TokenTTL: time.Hour, BcryptCost: 4},
		Poll:      poll.Config{CounterShards: 4, IndexBuckets: 4, CacheTTL: 200 * time.Millisecond, StaleIfError: 10 * time.Minute},
		Tally:     tally.Config{LiveCacheTTL: 200 * time.Millisecond, FinalCacheTTL: 200 * time.Millisecond},
		RateLimit: ratelimit.Config{PollCreatePerHour: 1000, VotesPerMinutePerUser: 1000, DisablePerIP: true},
		Vote:      vote.Config{Mode: "sync"},
		Queue:     votes.Config{ProduceTimeout: 3 * time.Second, KafkaCooldown: 2 * time.Second, KafkaDownAfter: 2 * time.Second, RequestTTL: time.Hour},
		Worker: votes.WorkerConfig{BatchSize: 256, BatchWait: 5 * time.Millisecond, Concurrency: 32,
			DrainConfig: vote.DrainConfig{PoisonAttempts: 2, MaxBackoff: 500 * time.Millisecond}},
		Reconcile: tally.ReconcileConfig{Interval: time.Hour, FinalizeDelay: time.Second, FinalizeWait: 30 * time.Second,
			Group: "test-reconciler"},
		Receipt: receipt.Config{Enabled: true, Keys: ReceiptSeed},
	}
}

// Server starts Tally's HTTP API in-process on an ephemeral port.
func Server(t testing.TB, cfg config.Config) (*app.App, *httptest.Server) {
	t.Helper()
	a, err := app.New(context.Background(), cfg, Logger(t))
	if err != nil {
		t.Fatalf("build app: %v", err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatalf("build router: %v", err)
	}
	srv := httptest.NewServer(router)
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return a, srv
}

// FrozenBallots waits, up to within, until the poll's final tally is frozen
// (its final_tallies row reads) and returns its ballot count.
func FrozenBallots(t testing.TB, a *app.App, pollID string, within time.Duration) int64 {
	t.Helper()
	pid, err := id.Parse(pollID)
	if err != nil {
		t.Fatalf("poll id %q: %v", pollID, err)
	}
	var ballots int64
	Eventually(t, within, func() error {
		err := a.CQL.Session.Query(`SELECT ballots FROM final_tallies WHERE poll_id = ? LIMIT 1`, pid).Scan(&ballots)
		if err != nil {
			return fmt.Errorf("final_tallies of poll %s: %w", pollID, err)
		}
		return nil
	})
	return ballots
}
