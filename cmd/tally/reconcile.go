package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/tally"
)

func newReconcileCmd() *cobra.Command {
	var (
		pollID         string
		enqueue        bool
		waitFinal      bool
		excludeFlagged bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --poll ID",
		Short: "Recount a poll from its vote rows, report drift, repair counters and cache",
		Long: "Runs reconciliation for one poll in this process and prints the report as JSON, " +
			"or with --enqueue hands it to the workers through the reconciliation topic. " +
			"With --exclude-flagged it also prints the tally with and without the votes bot signals flagged " +
			"(counted in the same pass; the tally of record keeps them) and records that re-tally in the audit log.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := pollFlag(pollID, true)
			if err != nil {
				return err
			}
			if enqueue && excludeFlagged {
				return errors.New("--exclude-flagged prints this run's counts; it cannot be combined with --enqueue")
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				if enqueue {
					if err := a.EnqueueReconcile(ctx, pid); err != nil {
						return err
					}
					fmt.Fprintln(os.Stderr, "enqueued reconciliation of poll", pid)
					return nil
				}
				fmt.Fprintln(os.Stderr, "reconciling poll", pid, "…")
				rep, err := a.Reconcile(ctx, pid, waitFinal, func(done, total int, ballots int64) {
					fmt.Fprintf(os.Stderr, "\rcounted index bucket %d/%d: %d ballots so far", done, total, ballots)
					if done == total {
						fmt.Fprintln(os.Stderr)
					}
				})
				if err != nil {
					return err
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if !excludeFlagged {
					return enc.Encode(rep)
				}
				flags, err := a.FlagReport(ctx, rep)
				if err != nil {
					return err
				}
				printFlagSummary(os.Stderr, flags)
				return enc.Encode(struct {
					Reconcile tally.Report      `json:"reconcile"`
					Flags     *tally.FlagReport `json:"flags"`
				}{rep, flags})
			})
		},
	}
	cmd.Flags().StringVar(&pollID, "poll", "", "poll pid (required)")
	cmd.Flags().BoolVar(&enqueue, "enqueue", false, "send the request to the workers instead of running it here")
	cmd.Flags().BoolVar(&excludeFlagged, "exclude-flagged", false, "also print the tally without the votes bot signals flagged (and how many, by reason), and audit the re-tally; the tally of record is unchanged")
	cmd.Flags().BoolVar(&waitFinal, "final", false, "for a closed poll, wait until the workers have applied every vote that can count (the close's watermark) and freeze the final tally")
	_ = cmd.MarkFlagRequired("poll")
	return cmd
}

// printFlagSummary writes the re-tally for a reader: totals, reasons, and
// each option with and without the flagged votes.
func printFlagSummary(w io.Writer, r *tally.FlagReport) {
	reasons := make([]string, 0, len(r.ByReason))
	for k, v := range r.ByReason {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "poll %s: %d votes, %d flagged", r.PollID, r.TotalVotes, r.FlaggedVotes)
	if len(reasons) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintf(w, "; %d without them (as of %s)\n", r.ResultsExcludingFlagged.TotalVotes, r.AsOf.Format("2006-01-02T15:04:05Z07:00"))
	for i, o := range r.Results.Options {
		ex := r.ResultsExcludingFlagged.Options[i]
		fmt.Fprintf(w, "  %-30q %8d (%6.2f%%)  excluding flagged %8d (%6.2f%%)\n", o.Label, o.Votes, o.Percentage, ex.Votes, ex.Percentage)
	}
}
