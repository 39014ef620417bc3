// Package app wires Tally's parts together from configuration: connections,
// stores, services and the HTTP router. The binary and the integration tests
// build the process the same way through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/scylladb/gocqlx/v2"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/dlq"
	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/kafkax/reconcile"
	"github.com/tally-vote/tally/pkg/kafkax/votes"
	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/livelag"
	"github.com/tally-vote/tally/pkg/observe"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/redisx/admission"
	"github.com/tally-vote/tally/pkg/redisx/fence"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/tracing"
	"github.com/tally-vote/tally/pkg/vote"
	"github.com/tally-vote/tally/pkg/webhook"
)

// App is one Tally process's parts.
type App struct {
	Cfg      config.Config
	Log      *zap.Logger
	Registry *prometheus.Registry
	CQL      gocqlx.Session
	Redis    *redis.Client
	Now      func() time.Time

	Auth  *auth.Service
	Polls *poll.Service
	Votes *vote.Service
	Tally *tally.Service
	Hub   *live.Hub
	// Notices announces counter changes to every process's live hub.
	Notices    *live.Notifier
	Limit      *ratelimit.Limiter
	Statuses   *vote.Statuses
	Reconciler *tally.Reconciler
	Audit      *audit.Log
	// Gate is the vote path's admission control; the worker yields to it.
	Gate *admit.Gate
	// Anon admits anonymous voters to invite and proof-of-work polls.
	Anon *anonaccess.Service
	// Receipts signs ballot receipts and lists the keys that verify them.
	Receipts *receipt.Keyring
	// Inclusion answers receipt lookups against the polls' ledgers.
	Inclusion *inclusion.Service
	// Events publishes the public event stream (tally.events).
	Events *events.Publisher
	// Webhooks registers owner webhooks and delivers events to them.
	Webhooks *webhook.Service

	failures  *cassandra.FailureStore
	votesW    *kafka.Writer
	dlqW      *kafka.Writer
	reconcile *kafka.Writer
	closeW    sync.Once
	worker    atomic.Pointer[votes.Worker]
	flags     vote.Flags

	// tracer is the process's tracer provider; nil while tracing is off.
	tracer trace.TracerProvider

	kafkaStats *observe.Kafka
	dlqDepth   *observe.DLQ
	active     *observe.ActivePolls
}

// seenCounter tells the active-polls gauge and the reconciliation job about
// every counted ballot, whichever path (worker, sync, write-through)
// counted it: the poll is reconciled on the next round and its final
// tally is recorded as due at its end time.
// Once counted, the change is announced to the live hubs.
type seenCounter struct {
	vote.Counter
	mover      *tally.Service
	active     *observe.ActivePolls
	reconciler *tally.Reconciler
	notices    *live.Notifier
	events     *events.Publisher
}

func (c seenCounter) Add(ctx context.Context, p *poll.Poll, shard int, ballots [][]id.ID, scores [][]int) error {
	c.active.Seen(p.ID)
	c.reconciler.Seen(ctx, p)
	if err := c.Counter.Add(ctx, p, shard, ballots, scores); err != nil {
		return err
	}
	c.notices.Changed(p.ID)
	c.events.Changed(p.ID)
	return nil
}

// Move moves a changed ballot's count (vote.CountMover), then announces
// the change like Add.
func (c seenCounter) Move(ctx context.Context, p *poll.Poll, shard int, from, to *vote.IndexEntry) error {
	c.active.Seen(p.ID)
	c.reconciler.Seen(ctx, p)
	if err := c.mover.Move(ctx, p, shard, choiceOf(from), choiceOf(to)); err != nil {
		return err
	}
	c.notices.Changed(p.ID)
	c.events.Changed(p.ID)
	return nil
}

func choiceOf(e *vote.IndexEntry) *tally.Choice {
	if e == nil {
		return nil
	}
	return &tally.Choice{Options: e.Options, Scores: e.Scores}
}

// eventedPolls emits poll.created once the poll's rows are written.
type eventedPolls struct {
	poll.Store
	events *events.Publisher
}

func (s eventedPolls) Create(ctx context.Context, p *poll.Poll) error {
	if err := s.Store.Create(ctx, p); err != nil {
		return err
	}
	s.events.PollCreated(p)
	return nil
}

// eventsGate holds the poll's results.changed window in Redis, so all
// processes together emit at most one per window.
func (a *App) eventsGate(ctx context.Context, pollID id.ID, every time.Duration) (time.Duration, error) {
	key := redisx.EventsResults(pollID)
	ok, err := a.Redis.SetNX(ctx, key, 1, every).Result()
	if err != nil || ok {
		return 0, err
	}
	ttl, err := a.Redis.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 {
		return time.Millisecond, nil
	}
	return ttl, nil
}

// pollsOf reads polls through the app's poll service, built after the
// publisher that reads through it.
type pollsOf struct{ a *App }

func (p pollsOf) Get(ctx context.Context, pollID id.ID) (*poll.Poll, error) {
	return p.a.Polls.Get(ctx, pollID)
}

// Option changes how New builds the process.
type Option func(*options)

type options struct{ tracer trace.TracerProvider }

// WithTracing traces the process with tp (pkg/tracing.Setup): the HTTP
// requests, the Redis commands and CQL statements made inside them, the
// votes' produce, and the worker's apply. A nil tp leaves tracing off and
// installs no instrumentation.
func WithTracing(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// New connects to Cassandra and builds every service. Redis and Kafka are
// not dialled here: the process starts while they are down and degrades.
func New(ctx context.Context, cfg config.Config, log *zap.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.MigrateOnStart {
		if err := cassandra.Migrate(ctx, cfg.Cassandra, log.Named("migrate")); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cqlObserver := cassandra.NewObserver(reg)
	if o.tracer != nil {
		cqlObserver.Trace(o.tracer)
	}
	s, err := cassandra.Connect(cfg.Cassandra, log.Named("cassandra"), cqlObserver.Install)
	if err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Log: log, Registry: reg, CQL: s, Redis: redisx.New(cfg.Redis), Now: time.Now, tracer: o.tracer}
	if a.tracer != nil {
		// Only inside a request's or a batch's trace; without arguments
		// (voter ids, tokens) or the caller's frame, which costs a stack
		// walk per command.
		if err := redisotel.InstrumentTracing(a.Redis, redisotel.WithTracerProvider(tracing.ChildOnly(a.tracer)),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			_ = a.Redis.Close()
			s.Close()
			return nil, fmt.Errorf("trace redis: %w", err)
		}
	}
	// Outside the breaker, so the commands it refuses count as errors.
	redisx.NewObserver(a.Redis, reg)
	redisx.WithBreaker(a.Redis, log.Named("redis"), reg)

	tokens := auth.NewTokens(cfg.JWTSecret, cfg.Auth.TokenTTL, a.Now)
	a.Auth = auth.NewService(cfg.Auth, cassandra.NewUserStore(s, cfg.Cassandra), tokens, log.Named("auth"), a.Now)
	a.Audit = audit.New(cassandra.NewAuditStore(s), cassandra.NewAuditChainStore(s, cfg.Cassandra), a.Now,
		log.Named("audit"), reg)
	fences := fence.New(a.Redis)
	a.Tally = tally.NewService(cfg.Tally, cassandra.NewTallyStore(s), redisx.NewCache(a.Redis), fences, a.Audit,
		log.Named("tally"), a.Now, reg)

	a.votesW = kafkax.NewWriter(cfg.Kafka, cfg.Kafka.VotesTopic)
	a.dlqW = kafkax.NewWriter(cfg.Kafka, cfg.Kafka.DLQTopic)
	a.reconcile = kafkax.NewWriter(cfg.Kafka, cfg.Kafka.ReconcileTopic)
	writers := map[string]*kafka.Writer{"votes": a.votesW, "dlq": a.dlqW, "reconcile": a.reconcile}
	var eventsW events.Writer = events.Discard{}
	if cfg.Kafka.EventsTopic != "" {
		w := kafkax.NewWriter(cfg.Kafka, cfg.Kafka.EventsTopic)
		writers["events"], eventsW = w, w
	}
	a.kafkaStats = observe.NewKafka(reg, writers)
	a.Events = events.NewPublisher(cfg.Events, events.NewEmitter(eventsW, log.Named("events"), reg), pollsOf{a}, a.Tally,
		log.Named("events"), a.Now, reg).WithGate(a.eventsGate)
	a.Webhooks = webhook.New(cfg.Webhook, cassandra.NewWebhookStore(s), log.Named("webhook"), a.Now, reg)
	a.Tally.OnFrozen(func(_ context.Context, p *poll.Poll, f tally.Frozen) { a.Events.Frozen(p, f) })
	a.dlqDepth = observe.NewDLQ(reg)
	const activeWindow = 5 * time.Minute
	a.active = observe.NewActivePolls(reg, redisx.NewActivePollSet(a.Redis, redisx.ActivePolls(), 2*activeWindow),
		observe.ActivePollsConfig{Window: activeWindow}, log.Named("active_polls"), a.Now)
	pollStore := cassandra.NewPollStore(s, cfg.Cassandra)
	a.Reconciler = tally.NewReconciler(cfg.Reconcile, tally.ReconcilerDeps{Tally: a.Tally, Polls: pollStore.Get,
		Sender: reconcile.NewRequests(a.reconcile), Offsets: a.votesProgress, Pending: cassandra.NewPendingFinals(s),
		Region: cfg.Region, Drains: cassandra.NewRegionDrains(s, a.Now), Log: log.Named("reconcile"), Now: a.Now, Metrics: reg})
	changes := redisx.NewPollChanges(a.Redis, log.Named("poll_changes"))
	a.Polls = poll.NewService(cfg.Poll, poll.Deps{Store: eventedPolls{Store: pollStore, events: a.Events}, Votes: a.Tally, Audit: a.Audit,
		OnClose: func(ctx context.Context, p *poll.Poll) {
			a.Reconciler.PollClosed(ctx, p)
			a.Events.PollClosed(p)
		}, Cursors: poll.NewCursors([]byte(cfg.JWTSecret)), Log: log.Named("poll"), Now: a.Now,
		Metrics: reg, Changes: changes})
	a.Hub = live.NewHub(live.Config{Backstop: cfg.LiveBackstop, Recheck: cfg.HTTP.LiveRecheck}, a.Tally, a.Polls,
		log.Named("live"), reg)
	a.Notices = live.NewNotifier(changes.PublishCounted, cfg.LiveNoticeEvery, nil, log.Named("live"), reg)
	changes.Listen(redisx.Listener{Counted: a.Hub.Counted, PollChanged: a.Hub.PollChanged, Connected: a.Hub.Resync})
	a.Tally.OnChanged(func(pollID id.ID) {
		a.Notices.Changed(pollID)
		a.Events.Changed(pollID)
	})

	q := votes.New(cfg.Queue, a.votesW, log.Named("queue"), a.Now, reg)
	if a.tracer != nil {
		q.Trace(a.tracer, cfg.Kafka.VotesTopic)
	}
	a.flags = admission.NewFlags(a.Redis, log.Named("flags"))
	a.Limit = ratelimit.New(cfg.RateLimit, a.Redis, log.Named("ratelimit"), a.Now, reg)
	voteStore := cassandra.NewVoteStore(s, cfg.Cassandra, reg)
	anonKey := cfg.AnonAccessKey
	if anonKey == "" {
		anonKey = cfg.JWTSecret
	}
	a.Anon = anonaccess.New(cfg.AnonAccess, []byte(anonKey), anonaccess.Deps{Store: cassandra.NewInviteStore(s),
		Ballots: vote.Ballots{Store: voteStore}, Audit: a.Audit, Log: log.Named("anonaccess"), Now: a.Now, Metrics: reg})
	if a.Receipts, err = cfg.Receipt.Keyring(); err != nil {
		return nil, err
	}
	a.Receipts.Instrument(reg)
	log.Named("receipt").Info("receipt keys loaded", zap.String("active_kid", a.Receipts.ActiveKeyID()),
		zap.Int("keys", len(a.Receipts.Keys())), zap.Bool("enabled", cfg.Receipt.Enabled))
	// Final runs freeze the poll's ledger, signed with the receipt key.
	a.Tally.SetLedger(cassandra.NewTallyStore(s), a.Receipts, reg)
	a.Inclusion = inclusion.New(cfg.Ledger, cassandra.NewTallyStore(s), log.Named("inclusion"), reg)
	var issuer *receipt.Keyring // nil: the vote path issues no receipts
	if cfg.Receipt.Enabled {
		issuer = a.Receipts
	}
	counter := seenCounter{Counter: a.Tally, mover: a.Tally, active: a.active, reconciler: a.Reconciler, notices: a.Notices, events: a.Events}
	a.Votes = vote.NewService(cfg.Vote, vote.Deps{Store: voteStore,
		Counter: counter, Changes: voteStore, Moves: counter, Audit: a.Audit,
		Fence: fences, Polls: a.Polls, Voters: a.Anon, Queue: q, Flags: a.flags, Log: log.Named("vote"), Now: a.Now,
		Admission:  admission.New(a.Redis, admission.Config{RequestTTL: cfg.Queue.RequestTTL, AutoPipeline: cfg.Redis.AutoPipeline}, log.Named("admission")),
		Limits:     a.Limit,
		RequestKey: []byte(cfg.JWTSecret), Bots: abuse.NewDetector(cfg.Bots, []byte(cfg.JWTSecret), a.Now, reg),
		Unfinished: cassandra.NewUnfinished(s), Receipts: issuer}, reg)
	a.Tally.CompleteBeforeFinal(func(ctx context.Context, p *poll.Poll) error {
		_, err := a.Votes.Complete(ctx, p)
		return err
	})
	a.failures = cassandra.NewFailureStore(s)
	a.Statuses = vote.NewStatuses(a.Votes, a.failures, a.flags)
	a.Gate = admit.New(cfg.Admit, a.Now, reg)
	return a, nil
}

// votesProgress reads the votes topic's ends and the worker group's
// commits.
func (a *App) votesProgress(ctx context.Context) (map[int]tally.PartitionProgress, error) {
	offs, err := kafkax.GroupOffsets(ctx, a.Cfg.Kafka, a.Cfg.Kafka.VotesTopic, a.Cfg.Kafka.Group)
	if err != nil {
		return nil, err
	}
	out := make(map[int]tally.PartitionProgress, len(offs))
	for p, o := range offs {
		out[p] = tally.PartitionProgress{End: o.End, Committed: o.Committed}
	}
	return out, nil
}

// Checks are the readiness probes of the three dependencies, and the
// worker's back-pressure state when this process runs one (reported, not
// failing readiness: votes are still accepted into Kafka meanwhile).
func (a *App) Checks() []httpapi.Check {
	return []httpapi.Check{
		{Name: "cassandra", Fn: func(ctx context.Context) error { return cassandra.Ping(ctx, a.CQL) }},
		{Name: "redis", Fn: func(ctx context.Context) error { return redisx.Ping(ctx, a.Redis) }},
		{Name: "kafka", Fn: func(ctx context.Context) error { return kafkax.Ping(ctx, a.Cfg.Kafka) }},
		{Name: "worker", Soft: true, Fn: func(context.Context) error {
			if w := a.worker.Load(); w != nil && w.Stalled() {
				return errors.New("holding its batch until Cassandra answers; the backlog waits in Kafka")
			}
			return nil
		}},
	}
}

// Router builds the HTTP handler.
func (a *App) Router() (http.Handler, error) {
	return httpapi.NewRouter(httpapi.Deps{
		Log:            a.Log.Named("http"),
		Registry:       a.Registry,
		Checks:         a.Checks(),
		Pprof:          a.Cfg.Pprof,
		PublicURL:      a.Cfg.PublicURL,
		HTTP:           a.Cfg.HTTP,
		TrustedProxies: a.Cfg.TrustedProxies,
		Now:            a.Now,
		Auth:           a.Auth,
		Polls:          a.Polls,
		Votes:          a.Votes,
		Tally:          a.Tally,
		Hub:            a.Hub,
		Limiter:        a.Limit,
		Statuses:       a.Statuses,
		Gate:           a.Gate,
		Anon:           a.Anon,
		ReceiptKeys:    a.Receipts,
		Inclusion:      a.Inclusion,
		Audit:          a.Audit,
		Webhooks:       a.Webhooks,
		Exports:        cassandra.NewVoteSource(a.CQL, nil),
		ExportKey:      a.Cfg.ExportKey(),
		Tracer:         a.tracer,
	})
}

// OpsRouter builds the operator listener's handler of a process that runs
// the worker without the API: probes and the registry the worker's metrics
// are on.
func (a *App) OpsRouter() http.Handler {
	return httpapi.NewOpsRouter(httpapi.OpsDeps{
		Log:           a.Log.Named("ops"),
		Registry:      a.Registry,
		Checks:        a.Checks(),
		OperatorToken: a.Cfg.HTTP.OperatorToken,
		Pprof:         a.Cfg.Pprof,
	})
}

// RunWorker drains the votes topic, runs reconciliation requests and
// schedules reconciliation of polls that receive votes, until ctx ends.
func (a *App) RunWorker(ctx context.Context) error {
	if err := kafkax.EnsureTopics(ctx, a.Cfg.Kafka); err != nil {
		a.Log.Warn("ensure kafka topics", zap.Error(err))
	}
	recon := kafkax.NewReader(a.Cfg.Kafka, a.Cfg.Kafka.ReconcileTopic, a.Cfg.Reconcile.Group)
	defer recon.Close()

	var wg sync.WaitGroup
	// Each applied vote's accept → apply time, per poll: the live-lag
	// history a poll's certified tally carries.
	lag := livelag.NewRecorder(cassandra.NewLagStore(cassandra.NewTallyStore(a.CQL)), a.Log.Named("livelag"), a.Registry)
	drain := vote.NewDrainer(a.Cfg.Worker.DrainConfig, vote.DrainDeps{
		Polls: a.Polls, Votes: a.Votes, Failures: a.failures, Flags: a.flags,
		Log: a.Log.Named("worker"), Registry: a.Registry, CloseGrace: a.Cfg.Reconcile.FinalizeDelay,
		Frozen: a.Tally.Frozen, Lag: lag.Observe,
		OnDeadLetter: func(ctx context.Context, msg vote.Message, cause error) {
			a.Audit.Record(ctx, msg.PollID, id.ID{}, audit.VoteDeadLetter,
				map[string]any{"request_id": msg.RequestID, "error": cause.Error()})
		},
	})
	w := votes.NewWorker(a.Cfg.Worker, votes.WorkerDeps{
		DLQ: a.dlqW, Votes: drain, Log: a.Log.Named("worker"), Registry: a.Registry,
		// In a process that serves the API the drain yields to it under
		// pressure; a dedicated worker never sees any.
		Yield:  a.Gate.Pressure,
		Burst:  a.Gate.Burst,
		Tracer: a.tracer,
	})
	a.worker.Store(w)
	wg.Add(8)
	go func() { defer wg.Done(); a.RunWebhooks(ctx) }()
	go func() { defer wg.Done(); lag.Run(ctx, time.Second) }()
	go func() { defer wg.Done(); a.dlqDepth.Watch(ctx, 30*time.Second, a.Cfg.Kafka, dlq.DefaultGroup) }()
	go func() { defer wg.Done(); a.Reconciler.RecordDrains(ctx) }()
	go func() { defer wg.Done(); a.Reconciler.Schedule(ctx) }()
	go func() { defer wg.Done(); a.Reconciler.Finalize(ctx) }()
	go func() {
		defer wg.Done()
		w.WatchLag(ctx, 5*time.Second, func(ctx context.Context) (map[int]int64, error) {
			return kafkax.GroupLag(ctx, a.Cfg.Kafka, a.Cfg.Kafka.VotesTopic, a.Cfg.Kafka.Group)
		})
	}()
	go func() {
		defer wg.Done()
		if err := reconcile.ConsumeRequests(ctx, recon, a.Reconciler.Handle, a.Log.Named("reconcile")); err != nil {
			a.Log.Error("reconciliation consumer stopped", zap.Error(err))
		}
	}()
	defer wg.Wait()
	for {
		// A worker that stops on an error it could not handle (the DLQ was
		// unwritable) has committed nothing of its batch; a new reader
		// rejoins the group and gets that batch again.
		votes := kafkax.NewReader(a.Cfg.Kafka, a.Cfg.Kafka.VotesTopic, a.Cfg.Kafka.Group)
		a.kafkaStats.SetReader(votes)
		err := w.Run(ctx, votes)
		a.kafkaStats.SetReader(nil)
		votes.Close()
		if ctx.Err() != nil {
			return nil
		}
		a.Log.Error("worker stopped, restarting", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// RunWebhooks is the webhook delivery process: a consumer group
// (TALLY_WEBHOOK_GROUP) on the events topic, until ctx ends. The worker
// runs it; without an events topic it does nothing.
func (a *App) RunWebhooks(ctx context.Context) {
	if a.Cfg.Kafka.EventsTopic == "" {
		return
	}
	group := a.Cfg.Webhook.Group
	if group == "" {
		group = "tally-webhooks"
	}
	r := kafkax.NewReader(a.Cfg.Kafka, a.Cfg.Kafka.EventsTopic, group)
	defer r.Close()
	if err := a.Webhooks.Run(ctx, r); err != nil {
		a.Log.Error("webhook delivery stopped", zap.Error(err))
	}
}

// Reconcile runs one poll's reconciliation in this process; progress may be
// nil.
func (a *App) Reconcile(ctx context.Context, pollID id.ID, waitFinal bool, progress func(done, total int, ballots int64)) (tally.Report, error) {
	return a.Reconciler.Run(ctx, pollID, waitFinal, progress)
}

// CloseWriters flushes and closes the Kafka writers.
func (a *App) CloseWriters() {
	a.closeW.Do(func() {
		for _, w := range []*kafka.Writer{a.votesW, a.dlqW, a.reconcile} {
			if err := w.Close(); err != nil {
				a.Log.Warn("close kafka writer", zap.String("topic", w.Topic), zap.Error(err))
			}
		}
	})
}

// Close ends the live subscriptions, stops the poll views' background work
// and releases connections.
func (a *App) Close() {
	a.Hub.Close()
	a.Polls.Close()
	a.Events.Close()
	a.CloseWriters()
	if err := a.Redis.Close(); err != nil {
		a.Log.Warn("close redis", zap.Error(err))
	}
	a.CQL.Close()
}
