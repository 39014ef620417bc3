package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/app"
)

func newAuditCmd() *cobra.Command {
	var (
		pollID string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "audit --poll ID",
		Short: "Print a poll's audit log (owner actions, repairs, frozen tally, dead-lettered votes), newest first, as JSON lines",
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := pollFlag(pollID, true)
			if err != nil {
				return err
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				events, err := a.AuditLog(ctx, id, limit)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(os.Stdout)
				for _, e := range events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&pollID, "poll", "", "poll id (required)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "most entries to print")
	_ = cmd.MarkFlagRequired("poll")
	return cmd
}
