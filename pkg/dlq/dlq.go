// Package dlq lets an operator read the dead-letter topic and re-drive its
// votes onto the votes topic.
package dlq

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
)

// Header names. The worker writes error, attempts and source when it
// dead-letters a vote; replay adds replayed-from to the re-driven copy.
const (
	HeaderError        = "error"
	HeaderAttempts     = "attempts"
	HeaderSource       = "source"
	HeaderReplayedFrom = "replayed-from"
)

// Entry is one dead-lettered message as list prints it.
type Entry struct {
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Key       string    `json:"key"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	Source    string    `json:"source,omitempty"`
	// Decoded tells whether the value parsed as a vote message; the ids
	// below are set only then.
	Decoded   bool   `json:"decoded"`
	PollID    *id.ID `json:"poll_id,omitempty"`
	VoterID   *id.ID `json:"voter_id,omitempty"`
	RequestID *id.ID `json:"request_id,omitempty"`
}

// voteFields are the fields of a vote message (ingest.Message on the wire)
// that identify it.
type voteFields struct {
	PollID    id.ID `json:"poll_id"`
	VoterID   id.ID `json:"voter_id"`
	RequestID id.ID `json:"request_id"`
}

// NewEntry describes a message of the dead-letter topic.
func NewEntry(m kafka.Message) Entry {
	e := Entry{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: keyString(m.Key)}
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderError:
			e.Error = string(h.Value)
		case HeaderAttempts:
			e.Attempts, _ = strconv.Atoi(string(h.Value))
		case HeaderSource:
			e.Source = string(h.Value)
		}
	}
	var v voteFields
	if json.Unmarshal(m.Value, &v) == nil && v.PollID != (id.ID{}) {
		e.Decoded = true
		e.PollID, e.VoterID, e.RequestID = &v.PollID, &v.VoterID, &v.RequestID
	}
	return e
}

// keyString shows a message key: the API keys votes by the voter id's 16
// raw bytes.
func keyString(k []byte) string {
	switch {
	case len(k) == 16:
		var id id.ID
		copy(id[:], k)
		return id.String()
	case utf8.Valid(k):
		return string(k)
	default:
		return hex.EncodeToString(k)
	}
}

// span is the offsets of one partition: First is the oldest message kept,
// End the offset the next message will get.
type span struct {
	First, End int64
}

func client(cfg kafkax.Config) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
}

// spans reads the first and end offsets of every partition of topic.
func spans(ctx context.Context, cfg kafkax.Config, topic string) (map[int]span, error) {
	c := client(cfg)
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s not found", topic)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := map[int]span{}
	for _, p := range offs.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s partition %d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = span{First: p.FirstOffset, End: p.LastOffset}
	}
	return out, nil
}

// committed reads a group's committed offset per partition; -1 where it
// never committed.
func committed(ctx context.Context, cfg kafkax.Config, topic, group string, parts map[int]span) (map[int]int64, error) {
	ids := make([]int, 0, len(parts))
	for p := range parts {
		ids = append(ids, p)
	}
	resp, err := client(cfg).OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, resp.Error)
	}
	out := map[int]int64{}
	for p := range parts {
		out[p] = -1
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offset of group %s partition %d: %w", group, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// readRange reads [from, to) of one partition without a consumer group and
// hands each message to fn.
func readRange(ctx context.Context, cfg kafkax.Config, topic string, partition int, from, to int64, fn func(kafka.Message) error) error {
	if from >= to {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("seek %s/%d to %d: %w", topic, partition, from, err)
	}
	for {
		m, err := r.ReadMessage(ctx) // no group: nothing is committed
		if err != nil {
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		if m.Offset >= to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset >= to-1 {
			return nil
		}
	}
}

// List reads the dead-letter topic from its oldest message up to its end
// when called, partition by partition, without a consumer group, and hands
// each message to fn.
func List(ctx context.Context, cfg kafkax.Config, fn func(Entry) error) error {
	sp, err := spans(ctx, cfg, cfg.DLQTopic)
	if err != nil {
		return err
	}
	for _, p := range sortedPartitions(sp) {
		err := readRange(ctx, cfg, cfg.DLQTopic, p, sp[p].First, sp[p].End, func(m kafka.Message) error {
			return fn(NewEntry(m))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedPartitions(sp map[int]span) []int {
	ps := make([]int, 0, len(sp))
	for p := range sp {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}
