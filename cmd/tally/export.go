package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/scan"
)

// pseudonymKeyEnv names the environment variable holding the pseudonym key.
const pseudonymKeyEnv = "TALLY_EXPORT_PSEUDONYM_KEY"

func newExportCmd() *cobra.Command {
	var (
		pollID, format, keyFile, consistency, metricsFile string
		o                                                 export.Options
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write vote rows (one poll, or the whole votes table) to CSV, JSON Lines or Parquet for analytics",
		Long: "Reads one poll through its per-poll index (--poll), or the whole votes table by token ranges cut at the " +
			"cluster's tokens, a bounded number at a time. Voter ids are replaced by HMAC-SHA256 pseudonyms keyed by " +
			pseudonymKeyEnv + " or --pseudonym-key-file (at least 16 bytes); without a key the export refuses to run " +
			"unless --real-voter-ids is given. IP and user agent are left out unless asked for. A file export is " +
			"written to OUT.partial with a checkpoint OUT.checkpoint of the units done; after an interruption, " +
			"--resume continues it without duplicating or losing rows.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Poll, err = pollFlag(pollID, false); err != nil {
				return err
			}
			if o.Format, err = export.ParseFormat(format); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if o.Consistency, err = scan.ParseConsistency(consistency); err != nil {
				return fmt.Errorf("--consistency: %w", err)
			}
			if o.PseudonymKey, err = pseudonymKey(keyFile, o.RealVoterIDs); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				return runExport(ctx, a, o, metricsFile)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&pollID, "poll", "", "export this poll only, through its per-poll index (default: the whole votes table)")
	f.StringVar(&format, "format", "csv", "csv, jsonl or parquet")
	f.StringVar(&o.Out, "out", "-", "output file; - is standard output (not resumable)")
	f.BoolVar(&o.Resume, "resume", false, "continue the interrupted export of --out from its checkpoint")
	f.StringVar(&keyFile, "pseudonym-key-file", "", "file holding the pseudonym key (default: $"+pseudonymKeyEnv+")")
	f.BoolVar(&o.RealVoterIDs, "real-voter-ids", false, "write real voter ids instead of pseudonyms (personal data)")
	f.BoolVar(&o.IncludeIP, "include-ip", false, "add the ip column (personal data)")
	f.BoolVar(&o.IncludeUserAgent, "include-user-agent", false, "add the user_agent column (personal data)")
	f.StringVar(&consistency, "consistency", "LOCAL_QUORUM", "read consistency (LOCAL_QUORUM sees every acknowledged vote in the local DC)")
	f.IntVar(&o.Splits, "splits", 0, "least token ranges for a table export (0: 64; never fewer than the ring's own)")
	f.IntVar(&o.Workers, "workers", 0, "units (token ranges or index buckets) read at once (0: 8)")
	f.StringVar(&metricsFile, "metrics-textfile", "", "write the run's Prometheus metrics to this file (node_exporter textfile format)")
	return cmd
}

// pseudonymKey reads the key from keyFile or the environment. A key file's
// trailing newline is not part of the key.
func pseudonymKey(keyFile string, realIDs bool) ([]byte, error) {
	var key []byte
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--pseudonym-key-file: %w", err)
		}
		key = []byte(strings.TrimRight(string(b), "\r\n"))
	} else if !realIDs {
		key = []byte(os.Getenv(pseudonymKeyEnv))
	}
	return key, nil
}

func runExport(ctx context.Context, a *app.App, o export.Options, metricsFile string) error {
	log := a.Logger().Named("export")
	o.Progress = progressBar("exporting votes")
	reg := prometheus.NewRegistry()
	_, err := a.Export(ctx, o, export.NewMetrics(reg), os.Stdout)
	if metricsFile != "" {
		if werr := prometheus.WriteToTextfile(metricsFile, reg); werr != nil {
			log.Warn("write metrics textfile", zap.Error(werr))
		}
	}
	return err
}
