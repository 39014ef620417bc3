// Package kafkax sets up kafka-go writers and readers with Tally's settings
// and manages the topics Tally needs.
package kafkax

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Config describes the brokers and topics.
type Config struct {
	Brokers        []string `env:"BROKERS" envDefault:"127.0.0.1:9092" envSeparator:","`
	VotesTopic     string   `env:"VOTES_TOPIC" envDefault:"tally.votes"`
	DLQTopic       string   `env:"DLQ_TOPIC" envDefault:"tally.votes.dlq"`
	ReconcileTopic string   `env:"RECONCILE_TOPIC" envDefault:"tally.reconcile"`
	// EventsTopic is the public event stream (pkg/events), keyed by poll.
	EventsTopic      string        `env:"EVENTS_TOPIC" envDefault:"tally.events"`
	EventsPartitions int           `env:"EVENTS_PARTITIONS" envDefault:"6"`
	Group            string        `env:"GROUP" envDefault:"tally-worker"`
	VotesPartitions  int           `env:"VOTES_PARTITIONS" envDefault:"12"`
	Replication      int           `env:"REPLICATION_FACTOR" envDefault:"1"`
	BatchTimeout     time.Duration `env:"BATCH_TIMEOUT" envDefault:"2ms"`
	BatchSize        int           `env:"BATCH_SIZE" envDefault:"16"`
	WriteTimeout     time.Duration `env:"WRITE_TIMEOUT" envDefault:"5s"`
	// Coalesce merges the partition batches the writers send at once into
	// one produce request per partition leader (Coalescer); off, each
	// partition batch is its own request, as kafka-go sends it.
	Coalesce bool `env:"COALESCE" envDefault:"true"`
}

// produceTransport is the one Coalescer every writer of the process shares,
// so batches of the votes, dead-letter and reconciliation topics bound for
// one broker also travel together.
var produceTransport = NewCoalescer(nil)

// ProduceStats reports how many produce requests the process's writers
// sent through the coalescer and how many partition batches they carried.
func ProduceStats() (requests, batches int64) { return produceTransport.Stats() }

// NewWriter returns a writer that waits for every in-sync replica
// (acks=all) before a write returns, batches for at most BatchTimeout rather
// than kafka-go's one-second default, and routes by key hash so all of one
// voter's messages land on one partition.
func NewWriter(cfg Config, topic string) *kafka.Writer {
	var transport kafka.RoundTripper
	if cfg.Coalesce {
		transport = produceTransport
	}
	return &kafka.Writer{
		Transport:              transport,
		Addr:                   kafka.TCP(cfg.Brokers...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           cfg.BatchTimeout,
		BatchSize:              cfg.BatchSize,
		WriteTimeout:           cfg.WriteTimeout,
		MaxAttempts:            3,
		AllowAutoTopicCreation: false,
	}
}

// NewReader returns a consumer-group reader. Callers use FetchMessage and
// commit only after the durable write; ReadMessage would auto-commit.
func NewReader(cfg Config, topic, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:        cfg.Brokers,
		Topic:          topic,
		GroupID:        group,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        100 * time.Millisecond,
		CommitInterval: 0, // synchronous commits
		StartOffset:    kafka.FirstOffset,
		// Rejoin fast after a restart; the defaults wait several seconds.
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
	})
}

// Ping asks a broker for cluster metadata.
func Ping(ctx context.Context, cfg Config) error {
	if len(cfg.Brokers) == 0 {
		return errors.New("no kafka brokers configured")
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 2 * time.Second}
	if _, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.VotesTopic}}); err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	return nil
}

// EnsureTopics creates Tally's topics when missing. It is idempotent.
func EnsureTopics(ctx context.Context, cfg Config) error {
	conn, err := kafka.DialContext(ctx, "tcp", cfg.Brokers[0])
	if err != nil {
		return fmt.Errorf("dial kafka: %w", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find kafka controller: %w", err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dial kafka controller: %w", err)
	}
	defer cc.Close()
	topics := []kafka.TopicConfig{
		{Topic: cfg.VotesTopic, NumPartitions: cfg.VotesPartitions, ReplicationFactor: cfg.Replication},
		{Topic: cfg.DLQTopic, NumPartitions: 1, ReplicationFactor: cfg.Replication},
		{Topic: cfg.ReconcileTopic, NumPartitions: 3, ReplicationFactor: cfg.Replication},
	}
	if cfg.EventsTopic != "" {
		n := cfg.EventsPartitions
		if n <= 0 {
			n = 6
		}
		topics = append(topics, kafka.TopicConfig{Topic: cfg.EventsTopic, NumPartitions: n, ReplicationFactor: cfg.Replication})
	}
	if err := cc.CreateTopics(topics...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}

// Ready reports whether every partition of Tally's topics has a leader.
func Ready(ctx context.Context, cfg Config) error {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 2 * time.Second}
	topics := []string{cfg.VotesTopic, cfg.DLQTopic, cfg.ReconcileTopic}
	if cfg.EventsTopic != "" {
		topics = append(topics, cfg.EventsTopic)
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.ID < 0 {
				return fmt.Errorf("topic %s partition %d has no leader yet", t.Name, p.ID)
			}
		}
	}
	return nil
}

// DeleteTopics removes topics (the bench cleans up its own).
func DeleteTopics(ctx context.Context, cfg Config, names ...string) error {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		return err
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", name, err)
		}
	}
	return nil
}
