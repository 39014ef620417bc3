package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/config"
)

// Environ renders cfg as the TALLY_* variables a tally process reads, so a
// test can run the real binary against the same keyspace and topics.
func Environ(cfg config.Config) []string {
	c := cfg
	kv := map[string]string{
		"TALLY_ENV":                    "dev",
		"TALLY_LOG_LEVEL":              "info",
		"TALLY_JWT_SECRET":             c.JWTSecret,
		"TALLY_RECEIPT_KEYS":           c.Receipt.Keys,
		"TALLY_CASSANDRA_HOSTS":        strings.Join(c.Cassandra.Hosts, ","),
		"TALLY_CASSANDRA_KEYSPACE":     c.Cassandra.Keyspace,
		"TALLY_REDIS_ADDR":             c.Redis.Addr,
		"TALLY_KAFKA_BROKERS":          strings.Join(c.Kafka.Brokers, ","),
		"TALLY_KAFKA_VOTES_TOPIC":      c.Kafka.VotesTopic,
		"TALLY_KAFKA_DLQ_TOPIC":        c.Kafka.DLQTopic,
		"TALLY_KAFKA_RECONCILE_TOPIC":  c.Kafka.ReconcileTopic,
		"TALLY_KAFKA_GROUP":            c.Kafka.Group,
		"TALLY_KAFKA_VOTES_PARTITIONS": fmt.Sprint(c.Kafka.VotesPartitions),
		"TALLY_POLL_CACHE_TTL":         c.Poll.CacheTTL.String(),
		"TALLY_WORKER_BATCH_SIZE":      fmt.Sprint(c.Worker.BatchSize),
		"TALLY_WORKER_CONCURRENCY":     fmt.Sprint(c.Worker.Concurrency),
		"TALLY_RECONCILE_GROUP":        c.Reconcile.Group,
		"TALLY_RECONCILE_INTERVAL":     c.Reconcile.Interval.String(),
		// A spawned worker's operator listener takes a free port, so
		// workers of concurrent tests never collide.
		"TALLY_WORKER_ADDR": "127.0.0.1:0",
	}
	env := os.Environ()
	for k, v := range kv {
		env = append(env, k+"="+v)
	}
	return env
}

// Binary builds cmd/tally into a temporary directory and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tally")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tally-vote/tally/cmd/tally").CombinedOutput()
	if err != nil {
		t.Fatalf("build tally: %v\n%s", err, out)
	}
	return bin
}
