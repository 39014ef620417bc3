package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/app"
)

func newServeCmd() *cobra.Command {
	var withWorker bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (and, unless --with-worker=false, the vote worker in the same process)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				if !withWorker {
					// Votes this process counts itself (sync mode, write-
					// through) still get their polls reconciled.
					go a.ScheduleReconciliation(ctx)
					return serve(ctx, a)
				}
				// The worker outlives the HTTP server: requests drain first,
				// then the Kafka writers flush, then the worker commits what
				// it wrote and stops.
				workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
				workerDone := make(chan error, 1)
				go func() { workerDone <- a.RunWorker(workerCtx) }()
				err := serve(ctx, a)
				a.CloseWriters()
				stopWorker()
				if werr := <-workerDone; werr != nil {
					a.Logger().Error("worker stopped", zap.Error(werr))
					if err == nil {
						err = werr
					}
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&withWorker, "with-worker", true, "also run the vote worker and reconciliation in this process")
	return cmd
}

// withApp loads configuration, builds the process, runs fn and releases
// everything afterwards.
func withApp(ctx context.Context, fn func(context.Context, *app.App) error) error {
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	tp, err := app.SetupTracing(ctx, log)
	if err != nil {
		return err
	}
	var opts []app.Option
	if tp != nil {
		// Deferred before Close, so it runs after it: the spans of the
		// drain's last batch and of the shutdown itself are exported, with
		// a fresh timeout since ctx is already cancelled by then.
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("flush traces", zap.Error(err))
			}
		}()
		opts = append(opts, app.WithTracing(tp))
	}
	a, err := app.New(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(ctx, a)
}
