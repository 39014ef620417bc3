package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tally",
		Short:         "Tally: polls and exactly-once voting on Cassandra, Kafka and Redis",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newWorkerCmd(), newMigrateCmd(), newReconcileCmd(), newAuditCmd(), newVerifyCmd(),
		newDLQCmd(), newExportCmd(), newReceiptCmd())
	return root
}

// setup loads configuration and builds the one logger of the process.
func setup() (config.Config, *zap.Logger, error) {
	cfg, err := config.Load()
	if err != nil {
		return cfg, nil, err
	}
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return cfg, nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		return cfg, nil, err
	}
	app.RouteDriverLogs(log)
	return cfg, log, nil
}

// pollFlag parses a --poll value; empty is the zero id unless required.
func pollFlag(s string, required bool) (id.ID, error) {
	if s == "" && !required {
		return id.ID{}, nil
	}
	pollID, err := id.Parse(s)
	if err != nil {
		return id.ID{}, fmt.Errorf("--poll: %w", err)
	}
	return pollID, nil
}
