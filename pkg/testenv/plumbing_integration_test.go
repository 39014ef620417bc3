//go:build integration

package testenv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestPlumbing proves the stack is real: an LWT on Cassandra, a message
// through a Kafka consumer group, and a Redis round trip.
func TestPlumbing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("cassandra lwt", func(t *testing.T) {
		s, _ := testenv.Cassandra(t)
		if err := s.Session.Query(`CREATE TABLE plumbing (k uuid PRIMARY KEY, v text)`).WithContext(ctx).Exec(); err != nil {
			t.Fatal(err)
		}
		k := gocql.TimeUUID()
		ins := `INSERT INTO plumbing (k, v) VALUES (?, ?) IF NOT EXISTS`
		var gotK id.ID
		var gotV string
		applied, err := s.Session.Query(ins, k, "first").WithContext(ctx).ScanCAS(&gotK, &gotV)
		if err != nil || !applied {
			t.Fatalf("first insert: applied=%v err=%v", applied, err)
		}
		applied, err = s.Session.Query(ins, k, "second").WithContext(ctx).ScanCAS(&gotK, &gotV)
		if err != nil || applied {
			t.Fatalf("second insert: applied=%v err=%v", applied, err)
		}
		if gotV != "first" {
			t.Fatalf("existing row: got %q, want first", gotV)
		}
		var v string
		if err := s.Session.Query(`SELECT v FROM plumbing WHERE k = ?`, k).WithContext(ctx).Scan(&v); err != nil || v != "first" {
			t.Fatalf("read back: %q %v", v, err)
		}
	})

	t.Run("kafka consumer group", func(t *testing.T) {
		cfg := testenv.Kafka(t)
		w := kafkax.NewWriter(cfg, cfg.VotesTopic)
		defer w.Close()
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello")}); err != nil {
			t.Fatalf("produce: %v", err)
		}
		r := kafkax.NewReader(cfg, cfg.VotesTopic, cfg.Group)
		defer r.Close()
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if string(m.Value) != "hello" {
			t.Fatalf("got %q", m.Value)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	})

	t.Run("redis", func(t *testing.T) {
		c := testenv.Redis(t)
		key := "tally:test:plumbing:" + gocql.TimeUUID().String()
		if err := c.Set(ctx, key, "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		v, err := c.Get(ctx, key).Result()
		if err != nil || v != "v" {
			t.Fatalf("get: %q %v", v, err)
		}
		ok, err := c.SetNX(ctx, key, "w", time.Minute).Result()
		if err != nil || ok {
			t.Fatalf("setnx on existing key: ok=%v err=%v", ok, err)
		}
		c.Del(ctx, key)
		if _, err := c.Get(ctx, key).Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("after del: %v", err)
		}
	})
}
