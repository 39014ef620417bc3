//go:build integration

package dlq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/dlq"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// deadLetter writes messages to the DLQ topic the way the worker does, and
// returns them.
func deadLetter(t *testing.T, ctx context.Context, cfg kafkax.Config, polls ...id.ID) []kafka.Message {
	t.Helper()
	w := kafkax.NewWriter(cfg, cfg.DLQTopic)
	defer w.Close()
	var msgs []kafka.Message
	for i, p := range polls {
		voter := id.New()
		value := []byte("not json")
		if p != (id.ID{}) {
			var err error
			value, err = json.Marshal(vote.Message{RequestID: id.New(), VoteID: id.New(),
				PollID: p, VoterID: voter, OptionIDs: []id.ID{id.New()}, AcceptedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
		}
		msgs = append(msgs, kafka.Message{Key: voter[:], Value: value, Headers: []kafka.Header{
			{Key: "error", Value: []byte("poll not found")},
			{Key: "attempts", Value: []byte("2")},
			{Key: "source", Value: []byte(fmt.Sprintf("%s/0/%d", cfg.VotesTopic, i))},
		}})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write dlq: %v", err)
	}
	return msgs
}

// readAll reads every message of topic without a consumer group.
func readAll(t *testing.T, ctx context.Context, cfg kafkax.Config, topic string) []kafka.Message {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range offs.Topics[topic] {
		if p.FirstOffset >= p.LastOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: p.Partition, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(p.FirstOffset); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p.Partition, err)
			}
			out = append(out, m)
			if m.Offset >= p.LastOffset-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestDLQListAndReplay lists dead-lettered messages, replays them onto the
// votes topic, and checks each arrives exactly once across repeated replays.
func TestDLQListAndReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := testenv.Kafka(t)
	p1, p2 := id.New(), id.New()
	sent := deadLetter(t, ctx, cfg, p1, p2, id.ID{}, p1)

	var listed []dlq.Entry
	if err := dlq.List(ctx, cfg, func(e dlq.Entry) error { listed = append(listed, e); return nil }); err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(listed) != len(sent) {
		t.Fatalf("listed %d messages, want %d", len(listed), len(sent))
	}
	for i, e := range listed {
		var voter id.ID
		copy(voter[:], sent[i].Key)
		if e.Offset != int64(i) || e.Key != voter.String() || e.Error != "poll not found" || e.Attempts != 2 ||
			e.Source != fmt.Sprintf("%s/0/%d", cfg.VotesTopic, i) {
			t.Errorf("entry %d: %+v", i, e)
		}
		if decoded := i != 2; e.Decoded != decoded || (decoded && *e.VoterID != voter) {
			t.Errorf("entry %d decoded=%v: %+v", i, e.Decoded, e)
		}
	}

	group := cfg.Group + "-dlq"
	rep, err := dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group, DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if rep.Pending != 4 || rep.Replayed != 4 || len(readAll(t, ctx, cfg, cfg.VotesTopic)) != 0 {
		t.Fatalf("dry run: %+v", rep)
	}

	var actions []dlq.Action
	rep, err = dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group,
		OnMessage: func(_ dlq.Entry, a dlq.Action) { actions = append(actions, a) }})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if rep.Pending != 4 || rep.Replayed != 4 || rep.Skipped != 0 || rep.Incomplete || len(actions) != 4 {
		t.Fatalf("replay: %+v %v", rep, actions)
	}
	checkReplayed := func(want int) {
		t.Helper()
		got := readAll(t, ctx, cfg, cfg.VotesTopic)
		if len(got) != want {
			t.Fatalf("%d messages on the votes topic, want %d", len(got), want)
		}
		seen := map[string]bool{}
		for _, m := range got {
			from := header(m, dlq.HeaderReplayedFrom)
			if seen[from] {
				t.Fatalf("dlq message %s replayed twice", from)
			}
			seen[from] = true
			var off int
			if _, err := fmt.Sscanf(from, "0/%d", &off); err != nil || off >= len(sent) {
				t.Fatalf("replayed-from %q", from)
			}
			if !bytes.Equal(m.Key, sent[off].Key) || !bytes.Equal(m.Value, sent[off].Value) {
				t.Fatalf("message %s changed on replay", from)
			}
		}
	}
	checkReplayed(4)

	rep, err = dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group})
	if err != nil || rep.Pending != 0 || rep.Replayed != 0 {
		t.Fatalf("second replay: %+v %v", rep, err)
	}
	checkReplayed(4)

	sent = append(sent, deadLetter(t, ctx, cfg, p2)...)
	rep, err = dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group})
	if err != nil || rep.Pending != 1 || rep.Replayed != 1 {
		t.Fatalf("replay of a new message: %+v %v", rep, err)
	}
	checkReplayed(5)
}

// TestDLQReplayOnePoll replays one poll's votes in that poll's own group.
func TestDLQReplayOnePoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := testenv.Kafka(t)
	p1, p2 := id.New(), id.New()
	deadLetter(t, ctx, cfg, p1, p2, id.ID{}, p1)

	group := cfg.Group + "-dlq"
	for run, want := range []int{2, 0} {
		rep, err := dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group, Poll: p1})
		if err != nil {
			t.Fatalf("replay %d: %v", run, err)
		}
		if rep.Replayed != want || rep.Group != group+".poll-"+p1.String() {
			t.Fatalf("replay %d: %+v", run, rep)
		}
	}
	got := readAll(t, ctx, cfg, cfg.VotesTopic)
	if len(got) != 2 {
		t.Fatalf("%d messages on the votes topic, want 2", len(got))
	}
	for _, m := range got {
		if e := dlq.NewEntry(m); *e.PollID != p1 {
			t.Fatalf("replayed a vote of poll %v", e.PollID)
		}
	}
	// The poll's replay did not consume the other messages of the full
	// replay's group.
	rep, err := dlq.Replay(ctx, cfg, dlq.ReplayOptions{Group: group})
	if err != nil || rep.Replayed != 4 {
		t.Fatalf("full replay after the poll's: %+v %v", rep, err)
	}
}
