package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// phase is one fault's run: its polls, its ledger, when the fault was on,
// and what its inject step observed.
type phase struct {
	name       string
	outage     bool
	led        *ledger
	polls      []pollInfo // the steady load's polls
	racePolls  []pollInfo // polls a race worked on (checked the same way)
	faultStart time.Time
	faultEnd   time.Time
	notes      []string
	violations []string
	seen       map[string]bool // violation keys already reported
	// excused are accepted votes the options race may fail: the option
	// change won and the request failed with a clear code.
	excused map[*request]bool
	// closedOK are polls whose close was answered 200 (close-race).
	closedOK []pollInfo
	// optionRaces pairs each options-race vote with its PATCH's status.
	optionRaces []optionRace
}

func (ph *phase) note(format string, args ...any) {
	ph.notes = append(ph.notes, fmt.Sprintf(format, args...))
}

func (ph *phase) violate(format string, args ...any) {
	ph.violations = append(ph.violations, fmt.Sprintf(format, args...))
}

// violateOnce reports a violation once per key (a poll found reopened by
// two checks is one violation).
func (ph *phase) violateOnce(key, format string, args ...any) {
	if ph.seen == nil {
		ph.seen = map[string]bool{}
	}
	if !ph.seen[key] {
		ph.seen[key] = true
		ph.violate(format, args...)
	}
}

// faultSpec is one row of the matrix. inject runs while the load runs and
// returns once the fault is over (the server or process is back), having
// set the phase's fault window.
type faultSpec struct {
	name  string
	about string
	short bool // part of --short
	// outage faults make votes fail for a while; their rows report how
	// long after the fault votes were accepted again, and fail if never.
	outage bool
	inject func(ctx context.Context, h *harness, ph *phase, l *load) error
}

func matrix() []faultSpec {
	return []faultSpec{
		{"baseline", "no fault: the harness's own zero", true, false, injectNothing},
		{"worker-kill", "SIGKILL the worker mid-batch, restart it; repeated", true, true, injectWorkerKill},
		{"api-kill", "SIGKILL the API right after it answered a 202, restart it", true, true, injectAPIKill},
		{"redis-restart", "stack down redis, hold, stack up redis", false, true, injectRedisRestart},
		{"kafka-restart", "stack down kafka, hold, stack up kafka", false, true, injectKafkaRestart},
		{"cassandra-pause", "SIGSTOP Cassandra past any retry budget, SIGCONT", true, true, injectCassandraPause},
		{"cassandra-restart", "stack down cassandra, stack up cassandra", false, true, injectCassandraRestart},
		{"close-race", "PATCH status=closed racing PATCH description on many polls", true, false, injectCloseRace},
		{"options-race", "a vote racing PATCH options on fresh polls", true, false, injectOptionsRace},
		{"change-kill", "voters change, revoke and vote again on a poll while the worker is SIGKILLed (issue 22)", false, true, injectChangeKill},
		{"storm", "one voter's 50 concurrent requests, each with its own key, for many voters", true, false, injectStorm},
		{"owner-patch", "the owner extends end_time, moves it into the past, replaces options and closes while votes stream in", false, false, injectOwnerPatch},
		{"slow-bodies", "one voter trickles 300 vote bodies a byte a second while the steady load goes on", false, false, injectSlowBodies},
		{"dlq-replay", "dead letters of frozen polls (voters who never voted, copies of counted ballots) re-driven by tally dlq replay", false, false, injectDLQReplay},
	}
}

func faultNames() []string {
	var out []string
	for _, f := range matrix() {
		out = append(out, f.name)
	}
	return out
}

// selectFaults parses --faults: all, short, or names (in matrix order).
func selectFaults(spec string) ([]faultSpec, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(spec, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []faultSpec
	for _, f := range matrix() {
		if want["all"] || (want["short"] && f.short) || want[f.name] {
			out = append(out, f)
			delete(want, f.name)
		}
	}
	delete(want, "all")
	delete(want, "short")
	for n := range want {
		return nil, fmt.Errorf("unknown fault %q (known: all, short, %s)", n, strings.Join(faultNames(), ", "))
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func injectNothing(ctx context.Context, h *harness, ph *phase, _ *load) error {
	return sleepCtx(ctx, h.opt.hold)
}

// injectWorkerKill SIGKILLs the worker while it is draining live load: each
// kill waits until the group has committed something since the last start
// (so the worker is fetching and writing), then strikes a random moment
// later, and restarts it at once.
func injectWorkerKill(ctx context.Context, h *harness, ph *phase, _ *load) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var lags []int64
	defer func() { ph.note("worker SIGKILLed %d times; votes topic lag at each kill: %v", len(lags), lags) }()
	for i := 1; i <= h.opt.workerKills; i++ {
		base, _ := h.committed(ctx)
		deadline := time.Now().Add(45 * time.Second)
		for {
			if n, err := h.committed(ctx); err == nil && n > base {
				break
			}
			if time.Now().After(deadline) {
				ph.note("kill %d: the worker committed nothing for 45 s before it was killed", i)
				break
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
		if err := sleepCtx(ctx, time.Duration(200+rng.IntN(1000))*time.Millisecond); err != nil {
			return err
		}
		// Strike while the group has uncommitted messages (fetched or about
		// to be), which at low rates is only part of the time.
		lag := h.lag(ctx)
		for until := time.Now().Add(3 * time.Second); lag <= 0 && time.Now().Before(until); lag = h.lag(ctx) {
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return err
			}
		}
		lags = append(lags, lag)
		if i == 1 {
			ph.faultStart = time.Now()
		}
		if err := h.worker.kill(syscall.SIGKILL); err != nil {
			return err
		}
		ph.faultEnd = time.Now()
		h.logf("%s: SIGKILLed the worker (%d/%d, lag %d)", ph.name, i, h.opt.workerKills, lag)
		if err := h.worker.start(); err != nil {
			return err
		}
	}
	return nil
}

// injectAPIKill SIGKILLs the API the moment a 202 came back, so answers
// just sent and requests in flight are cut off together, and restarts it.
func injectAPIKill(ctx context.Context, h *harness, ph *phase, l *load) error {
	for i := 1; i <= h.opt.apiKills; i++ {
		select {
		case <-l.accepted202:
		default:
		}
		select {
		case <-l.accepted202:
		case <-time.After(15 * time.Second):
			ph.note("kill %d: no 202 within 15 s before the kill", i)
		case <-ctx.Done():
			return ctx.Err()
		}
		if i == 1 {
			ph.faultStart = time.Now()
		}
		if err := h.apiProc.kill(syscall.SIGKILL); err != nil {
			return err
		}
		ph.faultEnd = time.Now()
		h.logf("%s: SIGKILLed the API right after a 202 (%d/%d)", ph.name, i, h.opt.apiKills)
		if err := h.apiProc.start(); err != nil {
			return err
		}
		if err := waitHTTP(ctx, h.api0()+"/healthz", 60*time.Second); err != nil {
			return err
		}
		if i < h.opt.apiKills {
			if err := sleepCtx(ctx, 3*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

func injectRedisRestart(ctx context.Context, h *harness, ph *phase, _ *load) error {
	return h.sharedFault(ctx, ph, "redis", h.opt.hold, func(ctx context.Context) error {
		if err := h.stack.run(ctx, 2*time.Minute, "down", "redis"); err != nil {
			return err
		}
		h.logf("%s: redis is down; holding %s", ph.name, h.opt.hold)
		return sleepCtx(ctx, h.opt.hold)
	}, []string{"up", "redis"})
}

func injectKafkaRestart(ctx context.Context, h *harness, ph *phase, _ *load) error {
	return h.sharedFault(ctx, ph, "kafka", h.opt.hold, func(ctx context.Context) error {
		if err := h.stack.run(ctx, 2*time.Minute, "down", "kafka"); err != nil {
			return err
		}
		h.logf("%s: kafka is down; holding %s", ph.name, h.opt.hold)
		return sleepCtx(ctx, h.opt.hold)
	}, []string{"up", "kafka"})
}

func injectCassandraPause(ctx context.Context, h *harness, ph *phase, _ *load) error {
	return h.sharedFault(ctx, ph, "cassandra", h.opt.pause, func(ctx context.Context) error {
		if err := h.stack.run(ctx, time.Minute, "pause", "cassandra"); err != nil {
			return err
		}
		h.logf("%s: cassandra is SIGSTOPped for %s", ph.name, h.opt.pause)
		return sleepCtx(ctx, h.opt.pause)
	}, []string{"resume", "cassandra"})
}

func injectCassandraRestart(ctx context.Context, h *harness, ph *phase, _ *load) error {
	return h.sharedFault(ctx, ph, "cassandra", h.opt.hold, func(ctx context.Context) error {
		if err := h.stack.run(ctx, 2*time.Minute, "down", "cassandra"); err != nil {
			return err
		}
		h.logf("%s: cassandra is down; holding %s", ph.name, h.opt.hold)
		return sleepCtx(ctx, h.opt.hold)
	}, []string{"up", "cassandra"})
}

// pollIDs lists every poll of the phase.
func (ph *phase) allPolls() []pollInfo {
	return append(append([]pollInfo{}, ph.polls...), ph.racePolls...)
}

func pollSet(ps []pollInfo) map[id.ID]pollInfo {
	m := make(map[id.ID]pollInfo, len(ps))
	for _, p := range ps {
		m[p.id] = p
	}
	return m
}

// stormRequests is how many requests, each with its own key, one voter of
// the storm row sends at once.
const stormRequests = 50

// injectStorm has voters each send stormRequests votes at once, each with
// its own Idempotency-Key (a double-clicking client, a script): exactly one
// may be accepted, the rest 409 or 503 while it is undecided (retried with
// their key, as every request of the harness is). A second acceptance shows
// as refused_late, which fails the row.
func injectStorm(ctx context.Context, h *harness, ph *phase, l *load) error {
	polls, err := h.createPolls(ctx, "storm", max(h.opt.racePolls/4, 2), 3)
	if err != nil {
		return err
	}
	ph.racePolls = polls
	var wg sync.WaitGroup
	for i, p := range polls {
		for v := range 2 {
			tok, ok := l.tokens.wait(10 * time.Second)
			if !ok {
				return fmt.Errorf("storm: no anonymous voter available")
			}
			vo := &voter{id: tok.id, token: tok.token, poll: p.id}
			start := make(chan struct{})
			for k := range stormRequests {
				r := &request{poll: p.id, voter: vo, option: p.options[k%len(p.options)],
					key: fmt.Sprintf("%s-storm-%d-%d-%d", h.runID, i, v, k), offered: time.Now()}
				ph.led.add(r)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					h.send(ctx, ph.led, r, nil)
				}()
			}
			close(start)
		}
	}
	wg.Wait()
	return sleepCtx(ctx, h.opt.hold)
}
