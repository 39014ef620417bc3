package main

import (
	"github.com/spf13/cobra"
	"github.com/tally-vote/tally/pkg/app"
)

func newMigrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create the keyspace and apply the cql/ migrations that are not applied yet",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup()
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			return app.Migrate(cmd.Context(), cfg, log)
		},
	}
}
