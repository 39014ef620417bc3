package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/tally-vote/tally/pkg/app"
)

func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use: "worker",
		Short: "Drain the votes topic into Cassandra and run reconciliation requests; " +
			"/healthz, /readyz and /metrics on TALLY_WORKER_ADDR",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(cmd.Context(), func(ctx context.Context, a *app.App) error {
				// Bound before the worker joins the group, so a taken port
				// fails the start instead of leaving an unobservable worker.
				srv := a.OpsServer()
				ln, err := net.Listen("tcp", srv.Addr)
				if err != nil {
					return fmt.Errorf("operator listener: %w", err)
				}
				return runWorker(ctx, a, srv, ln)
			})
		},
	}
}

// runWorker runs the vote worker until ctx is cancelled, with its operator
// listener on ln: probes and /metrics, no API. The listener outlives the
// drain, so probes and Prometheus see the worker until it has committed
// and stopped; a listener that fails stops the worker too.
func runWorker(ctx context.Context, a *app.App, srv *http.Server, ln net.Listener) error {
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	srv.Addr = ln.Addr().String()
	httpDone := make(chan error, 1)
	go func() {
		err := serveHTTP(httpCtx, a.Logger().Named("ops"), srv, ln)
		if err != nil {
			stopWorker()
		}
		httpDone <- err
	}()
	err := a.RunWorker(workerCtx)
	stopHTTP()
	return errors.Join(err, <-httpDone)
}
