package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
)

// DefaultGroup is the consumer group that remembers how far replay got.
const DefaultGroup = "tally-dlq-replay"

// Action is what replay did with one message.
type Action string

// Actions.
const (
	Replayed    Action = "replayed"
	WouldReplay Action = "would-replay" // --dry-run
	Skipped     Action = "skipped"      // another poll's, or not a vote
)

// ReplayOptions select what replay re-drives.
type ReplayOptions struct {
	// Group tracks progress (default DefaultGroup). With Poll set, the
	// group used is Group + ".poll-" + Poll, so a replay of one poll
	// neither consumes nor hides other polls' messages from a full replay.
	Group string
	// Poll, if set, re-drives only that poll's votes.
	Poll id.ID
	// DryRun reads from the group's committed offsets, produces and
	// commits nothing.
	DryRun bool
	// Idle stops a replay that has received no message for this long
	// (default 20s), for instance because another replay of the same group
	// holds the partitions.
	Idle time.Duration
	// OnMessage, if set, is told about each message handled.
	OnMessage func(Entry, Action)
}

// ReplayReport sums up a replay.
type ReplayReport struct {
	Group    string `json:"group"`
	DryRun   bool   `json:"dry_run"`
	Pending  int64  `json:"pending"` // messages past the group's offsets when the replay started
	Replayed int    `json:"replayed"`
	Skipped  int    `json:"skipped"`
	// Incomplete is set when the replay stopped idle before reaching the
	// end it saw at the start.
	Incomplete bool `json:"incomplete,omitempty"`
}

func (o *ReplayOptions) group() string {
	g := o.Group
	if g == "" {
		g = DefaultGroup
	}
	if o.Poll != (id.ID{}) {
		g += ".poll-" + o.Poll.String()
	}
	return g
}

// Replay re-produces dead-lettered votes onto the votes topic, key and
// value unchanged, with a replayed-from header naming the dead-letter
// partition/offset. It reads as a consumer group and commits each message
// right after its copy is acknowledged by every in-sync replica, so running
// it again picks up where it stopped and duplicates at most the one message
// whose commit was interrupted. It stops at the end offsets it saw when it
// started; votes dead-lettered again meanwhile wait for the next run.
//
// Re-driving a vote is safe even twice: the worker's INSERT … IF NOT EXISTS
// recognises a stored ballot by its request id.
func Replay(ctx context.Context, cfg kafkax.Config, o ReplayOptions) (ReplayReport, error) {
	rep := ReplayReport{Group: o.group(), DryRun: o.DryRun}
	if o.Idle <= 0 {
		o.Idle = 20 * time.Second
	}
	sp, err := spans(ctx, cfg, cfg.DLQTopic)
	if err != nil {
		return rep, err
	}
	done, err := committed(ctx, cfg, cfg.DLQTopic, rep.Group, sp)
	if err != nil {
		return rep, err
	}
	// from is where the group resumes in each partition with work left.
	from := map[int]int64{}
	for p, s := range sp {
		start := max(done[p], s.First)
		if start < s.End {
			from[p] = start
			rep.Pending += s.End - start
		}
	}
	if len(from) == 0 {
		return rep, nil
	}
	if o.DryRun {
		for _, p := range sortedPartitions(sp) {
			if _, ok := from[p]; !ok {
				continue
			}
			err := readRange(ctx, cfg, cfg.DLQTopic, p, from[p], sp[p].End, func(m kafka.Message) error {
				e := NewEntry(m)
				rep.count(o, e, WouldReplay)
				return nil
			})
			if err != nil {
				return rep, err
			}
		}
		return rep, nil
	}
	return rep, replay(ctx, cfg, o, sp, from, &rep)
}

// want reports whether e belongs to the replay.
func (o *ReplayOptions) want(e Entry) bool {
	return o.Poll == (id.ID{}) || (e.PollID != nil && *e.PollID == o.Poll)
}

func (r *ReplayReport) count(o ReplayOptions, e Entry, act Action) {
	if !o.want(e) {
		act = Skipped
	}
	if act == Skipped {
		r.Skipped++
	} else {
		r.Replayed++
	}
	if o.OnMessage != nil {
		o.OnMessage(e, act)
	}
}

func replay(ctx context.Context, cfg kafkax.Config, o ReplayOptions, sp map[int]span, from map[int]int64, rep *ReplayReport) error {
	w := kafkax.NewWriter(cfg, cfg.VotesTopic)
	defer w.Close()
	r := kafkax.NewReader(cfg, cfg.DLQTopic, rep.Group)
	defer r.Close()
	for len(from) > 0 {
		fctx, cancel := context.WithTimeout(ctx, o.Idle)
		m, err := r.FetchMessage(fctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			rep.Incomplete = true
			return nil
		default:
			return fmt.Errorf("fetch from %s: %w", cfg.DLQTopic, err)
		}
		if _, ok := from[m.Partition]; !ok || m.Offset >= sp[m.Partition].End {
			// Past the end seen at the start: left for the next run.
			delete(from, m.Partition)
			continue
		}
		e := NewEntry(m)
		if o.want(e) {
			err := w.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{{
				Key: HeaderReplayedFrom, Value: []byte(strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)),
			}}})
			if err != nil {
				return fmt.Errorf("produce to %s: %w", cfg.VotesTopic, err)
			}
		}
		// Skipped messages are committed too: the group of a poll-filtered
		// replay is that poll's own.
		if err := r.CommitMessages(ctx, m); err != nil {
			return fmt.Errorf("commit %s/%d/%d for group %s: %w", cfg.DLQTopic, m.Partition, m.Offset, rep.Group, err)
		}
		rep.count(o, e, Replayed)
		if m.Offset >= sp[m.Partition].End-1 {
			delete(from, m.Partition)
		}
	}
	return nil
}
