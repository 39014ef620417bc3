// Command chaos is Tally's fault matrix. It spawns a real API (`tally serve
// --with-worker=false`) and a real `tally worker` against a throw-away
// keyspace and topics on the local stack, offers votes open-loop at a steady
// rate, and injects one fault after another while the load runs: the worker
// and the API SIGKILLed, Redis, Kafka and Cassandra stopped, hung or
// restarted, owner edits racing a close and votes racing an option change.
// After each fault it waits for the drain and checks every accepted vote
// against the rows of the votes table, read with a token-range scan.
//
// It prints one row per fault and exits with status 1 if any row lost,
// duplicated or locked out a vote (or broke another invariant it checks).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newCmd().ExecuteContext(ctx)
	switch {
	case err == nil:
	case errors.Is(err, errRowsFailed):
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
}

// errRowsFailed is the run's verdict when at least one fault row failed.
var errRowsFailed = errors.New("at least one fault row failed")

func newCmd() *cobra.Command {
	opt := defaultOptions()
	var faults string
	cmd := &cobra.Command{
		Use:   "chaos --bin bin/tally",
		Short: "Fault matrix under steady open-loop vote load against the real local stack",
		Example: `  go run ./bench/chaos --bin bin/tally                       # every fault, 200 votes/s
  go run ./bench/chaos --bin bin/tally --short               # the make-test subset, 50 votes/s
  go run ./bench/chaos --bin bin/tally --faults baseline,worker-kill --rate 400 --json`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.short {
				opt.applyShort(cmd.Flags().Changed)
			}
			if faults == "" {
				faults = "all"
				if opt.short {
					faults = "short"
				}
			}
			var err error
			if opt.faults, err = selectFaults(faults); err != nil {
				return err
			}
			rows, err := run(cmd.Context(), opt, os.Stdout)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if !r.Pass {
					return errRowsFailed
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.bin, "bin", "bin/tally", "the tally binary to run (build it first: make build)")
	f.StringVar(&faults, "faults", "", "all, short, or a comma-separated list of: "+strings.Join(faultNames(), ", "))
	f.BoolVar(&opt.short, "short", false, "the short form `make test` runs: fewer faults, shorter holds, low rate")
	f.Float64Var(&opt.rate, "rate", opt.rate, "offered votes per second (open loop)")
	f.StringVar(&opt.jsonPath, "json", "", "also write the table as JSON (to this path; bare --json: bench/out/chaos-<run>.json)")
	f.Lookup("json").NoOptDefVal = "auto"
	f.StringVar(&opt.addr, "addr", opt.addr, "listen address of the spawned API (loopback only)")
	f.StringVar(&opt.stack, "stack", "", "the local stack script (default: deploy/local/stack of the repository)")
	f.StringVar(&opt.outDir, "out", "", "directory for process logs and reports (default: bench/out)")
	f.DurationVar(&opt.warm, "warm", opt.warm, "load before each fault")
	f.DurationVar(&opt.post, "post", opt.post, "load after each fault ends (recovery)")
	f.DurationVar(&opt.hold, "hold", opt.hold, "how long a stopped server stays down; the baseline's length")
	f.DurationVar(&opt.pause, "cassandra-pause", opt.pause, "how long Cassandra stays SIGSTOPped (longer than any retry budget)")
	f.IntVar(&opt.workerKills, "worker-kills", opt.workerKills, "worker SIGKILLs in the worker-kill fault")
	f.IntVar(&opt.apiKills, "api-kills", opt.apiKills, "API SIGKILLs in the api-kill fault")
	f.IntVar(&opt.racePolls, "race-polls", opt.racePolls, "polls raced in close-race and options-race")
	f.IntVar(&opt.loadPolls, "load-polls", opt.loadPolls, "polls the steady load spreads over, per fault")
	f.Float64Var(&opt.secondShare, "second-share", opt.secondShare, "share of offers that are an earlier voter's second vote (another key)")
	f.IntVar(&opt.retries, "retries", opt.retries, "retries of an unanswered or 5xx vote, same Idempotency-Key")
	f.DurationVar(&opt.requestTimeout, "request-timeout", opt.requestTimeout, "client timeout per HTTP attempt")
	f.IntVar(&opt.maxInFlight, "max-in-flight", opt.maxInFlight, "cap on concurrent vote requests (offers past it are shed and reported)")
	f.DurationVar(&opt.drainTimeout, "drain-timeout", opt.drainTimeout, "longest wait for the worker to drain after a fault")
	f.DurationVar(&opt.lockWait, "lock-wait", opt.lockWait, "longest wait for /tmp/tally-chaos.lock held by another live process")
	f.StringArrayVar(&opt.env, "env", nil, "extra KEY=VALUE for every spawned tally process (repeatable), e.g. TALLY_WORKER_MAX_BACKOFF=1s")
	f.BoolVar(&opt.keep, "keep", false, "keep the keyspace and topics afterwards (for inspection)")
	f.BoolVar(&opt.dump, "dump", false, "write every request and its verdict as JSON lines, one file per fault, beside the logs")
	return cmd
}

// options is one run's configuration.
type options struct {
	bin, addr, stack, outDir, jsonPath string
	faults                             []faultSpec
	short, keep, dump                  bool
	rate, secondShare                  float64
	warm, post, hold, pause            time.Duration
	workerKills, apiKills              int
	racePolls, loadPolls               int
	retries, maxInFlight               int
	requestTimeout                     time.Duration
	drainTimeout, lockWait             time.Duration
	env                                []string
}

// defaultOptions is the full matrix: about ten minutes at 200 votes/s.
func defaultOptions() options {
	return options{
		addr:           "127.0.0.1:18180",
		rate:           200,
		secondShare:    0.1,
		warm:           5 * time.Second,
		post:           15 * time.Second,
		hold:           15 * time.Second,
		pause:          90 * time.Second,
		workerKills:    5,
		apiKills:       2,
		racePolls:      40,
		loadPolls:      4,
		retries:        3,
		maxInFlight:    3000,
		requestTimeout: 10 * time.Second,
		drainTimeout:   4 * time.Minute,
		lockWait:       5 * time.Minute,
	}
}

// applyShort sets the short form's values for every flag not given
// explicitly.
func (o *options) applyShort(changed func(string) bool) {
	set := func(name string, apply func()) {
		if !changed(name) {
			apply()
		}
	}
	set("rate", func() { o.rate = 50 })
	set("warm", func() { o.warm = 3 * time.Second })
	set("post", func() { o.post = 6 * time.Second })
	set("hold", func() { o.hold = 5 * time.Second })
	set("cassandra-pause", func() { o.pause = 30 * time.Second })
	set("worker-kills", func() { o.workerKills = 2 })
	set("api-kills", func() { o.apiKills = 1 })
	set("race-polls", func() { o.racePolls = 12 })
	set("load-polls", func() { o.loadPolls = 3 })
	set("drain-timeout", func() { o.drainTimeout = 90 * time.Second })
	set("lock-wait", func() { o.lockWait = 2 * time.Minute })
}
