package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/verify"
)

// What each command of cmd/tally needs of the process, so commands never
// reach into its parts: the servers, the operator tools and the logger.

// Logger is the process's logger.
func (a *App) Logger() *zap.Logger { return a.Log }

// APIServer is the HTTP server of the API, on TALLY_HTTP_ADDR.
func (a *App) APIServer() (*http.Server, error) {
	router, err := a.Router()
	if err != nil {
		return nil, err
	}
	srv := httpapi.NewServer(a.Cfg.HTTP, a.Cfg.HTTPAddr, router)
	// Shutdown waits for requests to end; live sockets and streams end
	// only when told to.
	srv.RegisterOnShutdown(a.Hub.Close)
	return srv, nil
}

// OpsServer is the operator listener of a worker without the API (probes
// and /metrics), on TALLY_WORKER_ADDR.
func (a *App) OpsServer() *http.Server {
	return httpapi.NewServer(a.Cfg.HTTP, a.Cfg.WorkerAddr, a.OpsRouter())
}

// ScheduleReconciliation enqueues, every interval, a reconciliation of the
// polls whose ballots this process counted, until ctx ends (the worker
// does this in RunWorker; an API without a worker needs it for its sync
// and write-through votes).
func (a *App) ScheduleReconciliation(ctx context.Context) { a.Reconciler.Schedule(ctx) }

// AuditLog is a poll's audit log, newest first.
func (a *App) AuditLog(ctx context.Context, pollID id.ID, limit int) ([]audit.Event, error) {
	return a.Audit.List(ctx, pollID, limit)
}

// VerifyAuditChain checks the poll's owner-action chain (tally audit
// verify, tally verify --poll), against anchor when given: the head kept
// elsewhere, which detects a deletion of the last entries.
func (a *App) VerifyAuditChain(ctx context.Context, pollID id.ID, anchor *audit.Head) (audit.Head, int, error) {
	return a.Audit.VerifyChain(ctx, pollID, anchor)
}

// EnqueueReconcile hands a reconciliation of the poll to the workers.
func (a *App) EnqueueReconcile(ctx context.Context, pollID id.ID) error {
	return a.Reconciler.Enqueue(ctx, pollID, "on-demand")
}

// FlagReport is the re-tally of a reconciliation's counts without the
// ballots bot signals flagged; it is audited (actor: the CLI).
func (a *App) FlagReport(ctx context.Context, rep tally.Report) (*tally.FlagReport, error) {
	p, err := a.Polls.Get(ctx, rep.PollID)
	if err != nil {
		return nil, err
	}
	if err := a.Tally.Retallied(ctx, p.ID, rep.RowCounts(), rep.AsOf, id.ID{}, "cli"); err != nil {
		return nil, err
	}
	return tally.BuildFlagReport(p, rep.RowCounts(), rep.AsOf, a.Now()), nil
}

// Export streams ballots to w as o asks (tally export).
func (a *App) Export(ctx context.Context, o export.Options, m *export.Metrics, w io.Writer) (export.Report, error) {
	buckets := func(ctx context.Context, pollID id.ID) (int, error) {
		p, err := a.Polls.Get(ctx, pollID)
		if errors.Is(err, poll.ErrNotFound) {
			return 0, fmt.Errorf("--poll %s: %w", pollID, err)
		}
		if err != nil {
			return 0, err
		}
		return p.IndexBuckets, nil
	}
	return export.Run(ctx, export.Deps{Source: cassandra.NewVoteSource(a.CQL, buckets), Stdout: w,
		Log: a.Log.Named("export"), Metrics: m, Now: time.Now}, o)
}

// Verify scans every ballot row against the index, the counters and the
// frozen finals (tally verify).
func (a *App) Verify(ctx context.Context, o verify.Options) (verify.Report, error) {
	tallies := cassandra.NewTallyStore(a.CQL)
	return verify.Run(ctx, verify.Deps{Scan: cassandra.NewVoteSource(a.CQL, nil).Scan,
		Layout: verify.PollLayouts(a.Polls.Get), Index: cassandra.NewIndexStore(a.CQL), Counters: tallies,
		Finals: tallies, Log: a.Log.Named("verify"), Now: time.Now}, o)
}

// VerifyLedger recomputes a frozen poll's ledger root and tally from an
// export and compares them with the frozen, signed ones (tally verify
// --ledger); the head's signature is checked with the receipt key ring.
func (a *App) VerifyLedger(ctx context.Context, pollID id.ID, r io.Reader) (verify.LedgerReport, error) {
	return verify.Ledger(ctx, verify.LedgerDeps{Layout: verify.PollLayouts(a.Polls.Get),
		Finals: cassandra.NewTallyStore(a.CQL), Keys: a.Receipts.Keys()}, pollID, r)
}

// Migrate applies the schema's pending cql/ migrations (tally migrate).
func Migrate(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	return cassandra.Migrate(ctx, cfg.Cassandra, log.Named("migrate"))
}

// RouteDriverLogs sends the drivers' own log lines to log.
func RouteDriverLogs(log *zap.Logger) { redisx.RouteLogs(log.Named("redis")) }
