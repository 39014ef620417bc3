//go:build integration

package kafkax_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/testenv"
)

// TestCoalescedWritesOnTheRealBroker: 400 concurrent writers, each its own
// key (a voter), over 12 partitions with acks=all. Through the coalescer
// every message arrives once, in order per key, and the broker sees far
// fewer produce requests than kafka-go's partition batches.
func TestCoalescedWritesOnTheRealBroker(t *testing.T) {
	cfg := testenv.Kafka(t)
	cfg.VotesPartitions = 12
	cfg.VotesTopic += ".coalesce"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkax.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error { return kafkax.Ready(ctx, cfg) })
	cfg.BatchSize, cfg.BatchTimeout = 16, time.Millisecond
	w := kafkax.NewWriter(cfg, cfg.VotesTopic)
	defer w.Close()

	const writers, each = 400, 5
	req0, batch0 := kafkax.ProduceStats()
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				// One message per call, as a vote is produced.
				if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("voter-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(j))}); err != nil {
					t.Errorf("write %d/%d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	req1, batch1 := kafkax.ProduceStats()
	requests, batches := req1-req0, batch1-batch0
	t.Logf("%d messages in %d partition batches, sent as %d produce requests (%.1f messages per request)",
		writers*each, batches, requests, float64(writers*each)/float64(requests))
	if batches == 0 || requests*2 > batches {
		t.Errorf("%d produce requests for %d partition batches: nothing coalesced", requests, batches)
	}

	// Read everything back: each key's values are 0..each-1 in order, once.
	next := map[string]int{}
	total := 0
	for p := range cfg.VotesPartitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: cfg.VotesTopic, Partition: p, MaxWait: 200 * time.Millisecond})
		last, err := kafka.DialLeader(ctx, "tcp", cfg.Brokers[0], cfg.VotesTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := last.ReadLastOffset()
		last.Close()
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < end; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, off, err)
			}
			v, _ := strconv.Atoi(string(m.Value))
			if k := string(m.Key); v != next[k] {
				t.Fatalf("key %s: value %d after %d (out of order or duplicated)", k, v, next[k]-1)
			}
			next[string(m.Key)]++
			total++
		}
		r.Close()
	}
	if total != writers*each {
		t.Fatalf("read %d messages, wrote %d", total, writers*each)
	}
	for k, n := range next {
		if n != each {
			t.Fatal(fmt.Sprintf("key %s: %d messages, want %d", k, n, each))
		}
	}
}
