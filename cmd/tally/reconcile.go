package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/app"
)

func newReconcileCmd() *cobra.Command {
	var (
		pollID    string
		enqueue   bool
		waitFinal bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --poll ID",
		Short: "Recount a poll from its vote rows, report drift, repair counters and cache",
		Long: "Runs reconciliation for one poll in this process and prints the report as JSON, " +
			"or with --enqueue hands it to the workers through the reconciliation topic.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := pollFlag(pollID, true)
			if err != nil {
				return err
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				if enqueue {
					if err := a.Reconciler.Enqueue(ctx, id, "on-demand"); err != nil {
						return err
					}
					fmt.Fprintln(os.Stderr, "enqueued reconciliation of poll", id)
					return nil
				}
				fmt.Fprintln(os.Stderr, "reconciling poll", id, "…")
				rep, err := a.Reconcile(ctx, id, waitFinal, func(done, total int, ballots int64) {
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
				return enc.Encode(rep)
			})
		},
	}
	cmd.Flags().StringVar(&pollID, "poll", "", "poll id (required)")
	cmd.Flags().BoolVar(&enqueue, "enqueue", false, "send the request to the workers instead of running it here")
	cmd.Flags().BoolVar(&waitFinal, "final", false, "for a closed poll, wait until the workers have applied every vote that can count (the close's watermark) and freeze the final tally")
	_ = cmd.MarkFlagRequired("poll")
	return cmd
}
