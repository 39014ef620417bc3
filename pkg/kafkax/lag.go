package kafkax

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// PartitionOffsets is one partition's end (the offset the next message
// will get) and how far the group has committed (the first offset when it
// never committed).
type PartitionOffsets struct {
	End, Committed int64
}

// GroupLag returns, per partition of topic, how many messages the consumer
// group has not committed yet.
func GroupLag(ctx context.Context, cfg Config, topic, group string) (map[int]int64, error) {
	offs, err := GroupOffsets(ctx, cfg, topic, group)
	if err != nil {
		return nil, err
	}
	lag := make(map[int]int64, len(offs))
	for p, o := range offs {
		lag[p] = max(o.End-o.Committed, 0)
	}
	return lag, nil
}

// GroupOffsets returns, per partition of topic, its end and the group's
// committed offset.
func GroupOffsets(ctx context.Context, cfg Config, topic, group string) (map[int]PartitionOffsets, error) {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s not found", topic)
	}
	var (
		parts []int
		reqs  []kafka.OffsetRequest
	)
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetch group offsets: %w", err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("fetch group offsets: %w", committed.Error)
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		done[p.Partition] = p.CommittedOffset
	}
	out := map[int]PartitionOffsets{}
	for _, p := range offs.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of partition %d: %w", p.Partition, p.Error)
		}
		c, ok := done[p.Partition]
		if !ok || c < 0 {
			c = p.FirstOffset
		}
		out[p.Partition] = PartitionOffsets{End: p.LastOffset, Committed: c}
	}
	return out, nil
}
