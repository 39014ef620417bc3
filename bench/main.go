// Command bench is Tally's load generator. It measures the machine's
// ceilings (bare Redis, Kafka produce, Cassandra LWT, a bare Gin endpoint)
// and then drives scenarios against Tally in the same run, printing every
// figure beside its ceiling and ending each scenario with a correctness
// verdict read from Cassandra.
//
// Voters are synthetic: the bench signs their tokens itself with the
// server's TALLY_JWT_SECRET, so the server needs no bench-only endpoint or
// backdoor; whoever holds the secret can already mint tokens.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/scylladb/gocqlx/v2"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/retry"
)

type bench struct {
	url, addr, binary, secret, keyspace, runID, outDir string
	rate                                               float64
	dur, ceilingDur                                    time.Duration
	// durs overrides dur per scenario.
	durs              map[string]time.Duration
	conc, maxInFlight int
	http              *http.Client
	tokens            *auth.Tokens
	cql               gocqlx.Session
	cfg               config.Config
	lwtCeiling        float64
	ladder            []float64
	overloadRate      float64
	// burstRate is the burst scenario's offered rate; 0 means a quarter of
	// the run's saturated bare Gin (the front door's bar).
	burstRate float64
	botPolicy string
	// wsWatchers and sseWatchers are live watchers held open on the hot
	// poll during a scenario (the live scenario: 200 of each unless set).
	wsWatchers, sseWatchers int
	// bareRates are the offered rates at which bare Gin runs open loop in
	// its own process, each for bareDur; bareSteps are its figures.
	bareRates []float64
	bareDur   time.Duration
	bareSteps []bareStep
	// warmup is the named window at the start of each open-loop run whose
	// answers stay out of the judged accepted p99.
	warmup time.Duration
	// idleSample is how long the API is watched idle (the sampler alone)
	// before an accept-only scenario, to subtract the sampler's cost.
	idleSample time.Duration
	// drainConc is the separate worker's LWT concurrency in accept-only
	// scenarios (0: the ceiling loop's --concurrency, so the drain is
	// compared with the bare LWT loop at the same concurrency).
	drainConc int
	// settleFor is how long the run, and each scenario, waits for the
	// box's 1-minute load to fall to the validity bound before starting.
	settleFor time.Duration
}

// durationOf is a scenario's load duration (per ladder step).
func (b *bench) durationOf(scenario string) time.Duration {
	if d, ok := b.durs[scenario]; ok {
		return d
	}
	return b.dur
}

func (b *bench) drainConcurrency() int {
	if b.drainConc > 0 {
		return b.drainConc
	}
	return b.conc
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// kafkaCfg is the Kafka configuration with this run's topics.
func (b *bench) kafkaCfg() kafkax.Config {
	c := b.cfg.Kafka
	c.VotesTopic, c.DLQTopic, c.ReconcileTopic = b.topic("votes"), b.topic("dlq"), b.topic("reconcile")
	return c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func newCmd() *cobra.Command {
	b := &bench{}
	var (
		scenarios string
		jsonPath  string
		fresh     bool
		durations map[string]string
	)

	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test Tally beside the machine's own ceilings, and check correctness after every run",
		Example: `  go run ./bench --spawn bin/tally --scenarios viral --rate 10000 --duration 60s
  go run ./bench --url http://127.0.0.1:8080 --scenarios viral,retry-storm   # server started by you, same TALLY_* env`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b.durs = map[string]time.Duration{}
			for name, v := range durations {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("--durations %s=%s: %w", name, v, err)
				}
				b.durs[name] = d
			}
			return b.run(cmd.Context(), strings.Split(scenarios, ","), jsonPath, fresh)
		},
	}
	f := cmd.Flags()
	f.StringVar(&b.url, "url", "", "base URL of a running Tally (instead of --spawn)")
	f.StringVar(&b.binary, "spawn", "", "path to the tally binary: the bench starts `tally serve` per scenario in the right mode")
	f.StringVar(&b.addr, "addr", "127.0.0.1:18080", "listen address of the spawned server")
	f.StringVar(&scenarios, "scenarios", "viral,many-polls,retry-storm,sync", "comma-separated scenarios")
	f.Float64Var(&b.rate, "rate", 2000, "offered votes per second (open loop)")
	f.DurationVar(&b.dur, "duration", 20*time.Second, "load duration per scenario (per step of a ladder)")
	f.StringToStringVar(&durations, "durations", nil, "per-scenario load durations overriding --duration, e.g. accept=15s,burst=60s")
	f.DurationVar(&b.ceilingDur, "ceiling-duration", 5*time.Second, "duration of each ceiling measurement")
	f.IntVar(&b.conc, "concurrency", 128, "concurrency of the ceiling measurements")
	f.IntVar(&b.maxInFlight, "max-in-flight", 2048, "cap on concurrent requests of the open-loop client")
	f.StringVar(&jsonPath, "json", "", "write the full report here (default bench/out/<run>.json)")
	f.BoolVar(&fresh, "fresh", true, "drop the bench keyspace first so the verdict reads only this run")
	f.Float64SliceVar(&b.ladder, "ladder", []float64{1000, 3000, 5000},
		"accept: offered rates, each for --duration, the API alone (stops after a step whose p99 crosses 1 s)")
	f.Float64Var(&b.burstRate, "burst-rate", 0, "burst: offered rate, the drain yielding (0: 25 % of this run's saturated bare Gin)")
	f.Float64Var(&b.overloadRate, "overload-rate", 0, "overload: offered rate (0: twice the burst rate)")
	f.StringVar(&b.botPolicy, "bot-policy", "flag", "the bench polls' settings.bot_policy: off, flag or reject (every bench vote comes from one IP and user agent, so with flag nearly all are flagged: the rules' worst case)")
	f.IntVar(&b.wsWatchers, "ws-watchers", 0, "WebSockets held open on the hot poll during each scenario (live: 200 when neither watcher flag is set)")
	f.Float64SliceVar(&b.bareRates, "bare-rates", []float64{1000, 3000, 5000},
		"offered rates at which bare Gin runs open loop in its own process (the API's CPU ratio is taken at the same rate)")
	f.DurationVar(&b.bareDur, "bare-duration", 5*time.Second, "duration of each open-loop bare Gin rate")
	f.DurationVar(&b.warmup, "warmup", 5*time.Second, "warm-up at the start of each load step, left out of the judged accepted p99 (named in the report)")
	f.DurationVar(&b.idleSample, "idle-sample", 3*time.Second, "accept-only scenarios: API CPU read with only the sampler running, subtracted from each step")
	f.DurationVar(&b.settleFor, "settle", 3*time.Minute, "wait up to this long, before the run and before each scenario, for the 1-minute load to fall to 1.0 (the run's own setup and the scenario before it load the box); the load is then recorded as it is")
	f.IntVar(&b.drainConc, "drain-concurrency", 0, "accept-only scenarios: the separate worker's LWT concurrency (default: --concurrency, the bare LWT loop's)")
	f.IntVar(&b.sseWatchers, "sse-watchers", 0, "Server-Sent Events streams held open on the hot poll during each scenario (live: 200 when neither watcher flag is set)")
	cmd.AddCommand(newBareGinCmd())
	return cmd
}

func (b *bench) run(ctx context.Context, scenarios []string, jsonPath string, fresh bool) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if b.binary == "" && b.url == "" {
		return fmt.Errorf("give --spawn path/to/tally or --url")
	}
	if b.binary != "" {
		if cfg.Cassandra.Keyspace == "tally" {
			cfg.Cassandra.Keyspace = "tally_bench"
		}
		if os.Getenv("TALLY_JWT_SECRET") == "" {
			os.Setenv("TALLY_JWT_SECRET", cfg.JWTSecret)
		}
		os.Setenv("TALLY_CASSANDRA_KEYSPACE", cfg.Cassandra.Keyspace)
	} else if os.Getenv("TALLY_JWT_SECRET") == "" {
		return fmt.Errorf("with --url, set TALLY_JWT_SECRET to the server's secret so voters can be minted")
	}
	b.cfg, b.secret, b.keyspace = cfg, cfg.JWTSecret, cfg.Cassandra.Keyspace
	b.runID = time.Now().UTC().Format("20060102T150405")
	b.outDir = "bench/out"
	if err := os.MkdirAll(b.outDir, 0o755); err != nil {
		return err
	}
	b.tokens = auth.NewTokens(b.secret, 6*time.Hour, time.Now)
	b.http = &http.Client{Transport: &http.Transport{MaxIdleConns: b.maxInFlight, MaxIdleConnsPerHost: b.maxInFlight,
		IdleConnTimeout: 30 * time.Second}}

	if fresh && b.binary != "" {
		b.logf("dropping keyspace %s for a clean verdict", b.keyspace)
		// A schema change can miss the driver's timeout on a busy box: retry.
		if err := retry.Do(ctx, retry.Policy{Base: time.Second, Max: 5 * time.Second, Attempts: 5}, func(int) error {
			return cassandra.DropKeyspace(ctx, cfg.Cassandra)
		}, nil); err != nil {
			return err
		}
	}
	if err := cassandra.Migrate(ctx, cfg.Cassandra, zap.NewNop()); err != nil {
		return err
	}
	b.cql, err = cassandra.Connect(cfg.Cassandra, zap.NewNop())
	if err != nil {
		return err
	}
	defer b.cql.Close()

	b.settle(ctx, "run "+b.runID)
	start := readLoadAvg()
	if !start.Valid() {
		b.logf("run %s: 1-minute load average %.2f at start is above %.1f: this run is INVALID (its figures are printed, not to be cited)",
			b.runID, start.One, maxStartLoad)
	}
	b.logf("run %s: measuring ceilings (concurrency %d, %s each)", b.runID, b.conc, b.ceilingDur)
	ceilings, err := b.measureCeilings(ctx)
	if err != nil {
		return fmt.Errorf("ceilings: %w", err)
	}
	for _, c := range ceilings {
		if c.Name == "gin JSON endpoint" && b.burstRate == 0 {
			b.burstRate = math.Round(c.OpsPerS / 4)
		}
	}
	if b.overloadRate == 0 {
		b.overloadRate = 2 * b.burstRate
	}
	b.logf("burst rate %.0f/s, overload rate %.0f/s", b.burstRate, b.overloadRate)
	plans := map[string]plan{
		"viral":       {Name: "viral", Mode: "async", Polls: 1},
		"many-polls":  {Name: "many-polls", Mode: "async", Polls: 2000},
		"retry-storm": {Name: "retry-storm", Mode: "async", Polls: 1, RetryShare: 0.3},
		"sync":        {Name: "sync", Mode: "sync", Polls: 1},
		// burst: a quarter of bare Gin's saturated rate (or --burst-rate)
		// with the drain beside the API yielding; then the backlog drains.
		"burst": {Name: "burst", Mode: "async", Polls: 1, Rate: b.burstRate},
		// accept: the API alone at rising rates (no drain beside it), its
		// CPU per accepted vote; then a worker process drains the backlog.
		"accept": {Name: "accept", Mode: "async", Polls: 1, Ladder: b.ladder, StopP99: time.Second, AcceptOnly: true},
		// steady: 1,000 votes/s with the drain running beside it.
		"steady": {Name: "steady", Mode: "async", Polls: 1, Rate: 1000},
		// overload: twice what the box accepts; the excess is shed.
		"overload": {Name: "overload", Mode: "async", Polls: 1, Rate: b.overloadRate},
		// live: viral with live watchers (WebSockets and SSE streams) on
		// the hot poll: frames per watcher per second, as_of lag, the
		// server's CPU per frame.
		"live": {Name: "live", Mode: "async", Polls: 1, Watch: true},
		// webhook-hang: steady's 1,000 votes/s over 20 polls, first with no
		// webhooks, then with hanging and slow receivers registered on every
		// poll; the accepted p99s are compared (issue 23).
		"webhook-hang": {Name: "webhook-hang", Mode: "async", Polls: 20, Rate: 1000, Pair: true},
	}
	var reps []*scenarioReport
	for _, name := range scenarios {
		p, ok := plans[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		rate := b.rate
		if p.Rate > 0 {
			rate = p.Rate
		}
		b.logf("scenario %s: %.0f votes/s for %s (%s)", p.Name, rate, b.durationOf(p.Name), p.Mode)
		if p.Pair {
			pair, err := b.runWebhookHang(ctx, p)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", p.Name, err)
			}
			reps = append(reps, pair...)
			continue
		}
		rep, err := b.runScenario(ctx, p)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", p.Name, err)
		}
		reps = append(reps, rep)
	}
	printTable(os.Stdout, b.conc, start, ceilings, b.bareSteps, b.warmup, reps)
	bar := frontDoorBar(reps, ceilings, b.bareSteps)
	printBar(os.Stdout, bar, start.Valid())

	if jsonPath == "" {
		jsonPath = filepath.Join(b.outDir, b.runID+".json")
	}
	for _, r := range reps {
		path := strings.TrimSuffix(jsonPath, ".json") + "-" + r.Name + ".svg"
		if err := drawChart(path, b.runID, r, ceilings); err != nil {
			b.logf("chart %s: %v", path, err)
			continue
		}
		fmt.Printf("chart: %s\n", path)
	}
	doc := map[string]any{"run": b.runID, "rate": b.rate, "duration_s": b.dur.Seconds(), "concurrency": b.conc,
		"warmup_s": b.warmup.Seconds(), "load_at_start": start, "valid": start.Valid(), "durations": b.durs, "bar": bar,
		"ceilings": ceilings, "bare_gin_open_loop": b.bareSteps, "scenarios": reps, "host_cpus": numCPU()}
	if f, err := os.Create(jsonPath); err == nil {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		_ = enc.Encode(doc)
		f.Close()
		fmt.Printf("\nfull report: %s\n", jsonPath)
	}
	b.cleanupTopics(ctx)
	for _, r := range reps {
		if !r.Verdict.OK {
			return fmt.Errorf("scenario %s failed its correctness verdict", r.Name)
		}
	}
	return nil
}

// cleanupTopics deletes this run's topics.
func (b *bench) cleanupTopics(ctx context.Context) {
	var names []string
	for _, n := range []string{"votes", "dlq", "reconcile", "ceiling", "events"} {
		names = append(names, b.topic(n))
	}
	if err := kafkax.DeleteTopics(ctx, b.cfg.Kafka, names...); err != nil {
		b.logf("delete bench topics: %v", err)
	}
}

func numCPU() int { return runtime.NumCPU() }
