package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/dlq"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and re-drive the dead-letter topic",
	}
	cmd.AddCommand(newDLQListCmd(), newDLQReplayCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print every message of the dead-letter topic, oldest first, up to its current end",
		Long: "Reads the dead-letter topic from its first offset without a consumer group, so nothing is " +
			"committed. Each line shows partition/offset, key, the worker's error, attempts and source headers, " +
			"and the vote's poll_id, voter_id and request_id when the value is a vote message.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup()
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			enc := json.NewEncoder(os.Stdout)
			n := 0
			err = dlq.List(cmd.Context(), cfg.Kafka, func(e dlq.Entry) error {
				n++
				if asJSON {
					return enc.Encode(e)
				}
				printEntry(os.Stdout, "", e)
				return nil
			})
			if err != nil {
				return err
			}
			log.Named("dlq").Info("dead-letter topic listed", zap.String("topic", cfg.Kafka.DLQTopic), zap.Int("messages", n))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per message")
	return cmd
}

func newDLQReplayCmd() *cobra.Command {
	var (
		o      dlq.ReplayOptions
		pollID string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-produce dead-lettered votes onto the votes topic, once per consumer group",
		Long: "Re-produces each message of the dead-letter topic onto the votes topic (key and value unchanged, " +
			"header replayed-from = dlq partition/offset) and commits it in a consumer group right after, so a " +
			"second run replays only what arrived since. Re-driving a vote is safe: the worker recognises a stored " +
			"ballot by its request id. With --poll only that poll's votes are replayed, tracked in the group " +
			"<group>.poll-<id>; a later full replay re-drives them again, harmlessly.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := pollFlag(pollID, false)
			if err != nil {
				return err
			}
			o.Poll = id
			cfg, log, err := setup()
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			log = log.Named("dlq")
			enc := json.NewEncoder(os.Stdout)
			o.OnMessage = func(e dlq.Entry, act dlq.Action) {
				if asJSON {
					_ = enc.Encode(struct {
						Action dlq.Action `json:"action"`
						dlq.Entry
					}{act, e})
					return
				}
				printEntry(os.Stdout, string(act)+" ", e)
			}
			rep, err := dlq.Replay(cmd.Context(), cfg.Kafka, o)
			log.Info("dead-letter replay", zap.String("group", rep.Group), zap.Bool("dry_run", rep.DryRun),
				zap.Int64("pending", rep.Pending), zap.Int("replayed", rep.Replayed), zap.Int("skipped", rep.Skipped),
				zap.Bool("incomplete", rep.Incomplete), zap.Error(err))
			if err != nil {
				return err
			}
			if asJSON {
				if err := enc.Encode(struct {
					Summary dlq.ReplayReport `json:"summary"`
				}{rep}); err != nil {
					return err
				}
			} else {
				verb := "replayed"
				if rep.DryRun {
					verb = "would replay"
				}
				fmt.Fprintf(os.Stdout, "%s %d, skipped %d, of %d pending (group %s)\n",
					verb, rep.Replayed, rep.Skipped, rep.Pending, rep.Group)
			}
			if rep.Incomplete {
				return fmt.Errorf("dlq replay: no message for %s before the end was reached; is another replay of group %s running?", o.Idle, rep.Group)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Group, "group", dlq.DefaultGroup, "consumer group that remembers what was replayed")
	f.StringVar(&pollID, "poll", "", "replay only this poll's votes")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be replayed; produce and commit nothing")
	f.DurationVar(&o.Idle, "idle", 20*time.Second, "give up when no message arrives for this long")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per message, then {\"summary\": …}")
	return cmd
}

func printEntry(w io.Writer, prefix string, e dlq.Entry) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%d/%d key=%s", prefix, e.Partition, e.Offset, e.Key)
	if e.Decoded {
		fmt.Fprintf(&b, " poll_id=%s voter_id=%s request_id=%s", e.PollID, e.VoterID, e.RequestID)
	} else {
		b.WriteString(" (not a vote message)")
	}
	fmt.Fprintf(&b, " attempts=%d source=%s error=%q", e.Attempts, e.Source, e.Error)
	fmt.Fprintln(w, b.String())
}
