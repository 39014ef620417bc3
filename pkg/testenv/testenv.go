// Package testenv gives integration tests throw-away resources on the real
// Cassandra, Kafka and Redis that `make up` starts: a fresh migrated
// keyspace, fresh topics, and a Redis client.
package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/scylladb/gocqlx/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/redisx"
)

func suffix() string {
	return strings.ReplaceAll(uuid.NewString()[:13], "-", "")
}

// CassandraConfig returns the test cluster's config with a unique keyspace.
func CassandraConfig() cassandra.Config {
	cfg := cassandra.Config{
		Hosts:             []string{envOr("TALLY_CASSANDRA_HOSTS", "127.0.0.1:9042")},
		Keyspace:          "tally_test_" + suffix(),
		Replication:       "{'class': 'SimpleStrategy', 'replication_factor': 1}",
		Consistency:       "LOCAL_QUORUM",
		SerialConsistency: "LOCAL_SERIAL",
		Timeout:           10 * time.Second,
		ConnectTimeout:    10 * time.Second,
		NumConns:          2,
		ReconnectInterval: time.Second,
	}
	return cfg
}

// Cassandra creates and migrates a fresh keyspace, and drops it when the
// test ends.
func Cassandra(t testing.TB) (gocqlx.Session, cassandra.Config) {
	t.Helper()
	cfg := CassandraConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cfg, zap.NewNop()); err != nil {
		t.Fatalf("migrate test keyspace (is the stack up? run `make up`): %v", err)
	}
	s, err := cassandra.Connect(cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("connect cassandra: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cassandra.DropKeyspace(ctx, cfg); err != nil {
			t.Logf("drop keyspace %s: %v", cfg.Keyspace, err)
		}
	})
	return s, cfg
}

// Redis returns a client on the local Redis.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	c := redisx.New(redisx.Config{Addr: envOr("TALLY_REDIS_ADDR", "127.0.0.1:6380"), PoolSize: 64,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err := redisx.Ping(context.Background(), c); err != nil {
		t.Fatalf("redis (is the stack up? run `make up`): %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kafka returns a config whose topics and group are unique to this test,
// created on the local broker.
func Kafka(t testing.TB) kafkax.Config {
	t.Helper()
	s := suffix()
	cfg := kafkax.Config{
		Brokers:         []string{envOr("TALLY_KAFKA_BROKERS", "127.0.0.1:9092")},
		VotesTopic:      "test.votes." + s,
		DLQTopic:        "test.dlq." + s,
		ReconcileTopic:  "test.reconcile." + s,
		EventsTopic:     "test.events." + s,
		Group:           "test-group-" + s,
		VotesPartitions: 4,
		Replication:     1,
		BatchTimeout:    2 * time.Millisecond,
		BatchSize:       500,
		WriteTimeout:    10 * time.Second,
		Coalesce:        true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkax.EnsureTopics(ctx, cfg); err != nil {
		t.Fatalf("create kafka topics (is the stack up? run `make up`): %v", err)
	}
	// A new topic's partitions need a moment to elect leaders; produce
	// before that fails, which would look like Kafka being down.
	Eventually(t, 20*time.Second, func() error { return kafkax.Ready(ctx, cfg) })
	return cfg
}

// Logger is a test logger that prints only on failure.
func Logger(t testing.TB) *zap.Logger {
	redisx.RouteLogs(zap.NewNop())
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}
