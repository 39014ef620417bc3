package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/kafkax"
)

// harness is one chaos run: its processes, its keyspace and topics, and the
// client that plays the users.
type harness struct {
	opt      options
	runID    string
	keyspace string
	secret   string
	outDir   string
	env      []string
	kafka    kafkax.Config
	api      *client
	apiProc  *proc
	worker   *proc
	stack    *stack
	owner    string
	start    time.Time
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[chaos %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) api0() string { return "http://" + h.opt.addr }

// run sets up the run, plays every selected fault and prints the table.
func run(ctx context.Context, opt options, out io.Writer) ([]Row, error) {
	if opt.rate <= 0 || len(opt.faults) == 0 {
		return nil, fmt.Errorf("nothing to do: --rate must be > 0 and at least one fault selected")
	}
	if err := checkLoopback(opt.addr); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(opt.bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("--bin %s: %w (build it: make build)", opt.bin, err)
	}
	opt.bin = bin
	wd, _ := os.Getwd()
	if opt.stack == "" {
		if opt.stack, err = findStack(wd); err != nil {
			return nil, err
		}
	}
	if opt.outDir == "" {
		opt.outDir = filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(opt.stack))), "bench", "out")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	h := &harness{opt: opt, runID: time.Now().UTC().Format("20060102t150405") + hex.EncodeToString(b),
		secret: hex.EncodeToString(secret), start: time.Now()}
	h.keyspace = "tally_chaos_" + h.runID
	h.outDir = filepath.Join(opt.outDir, "chaos-"+h.runID)
	if err := os.MkdirAll(h.outDir, 0o755); err != nil {
		return nil, err
	}
	h.stack = &stack{script: opt.stack, log: filepath.Join(h.outDir, "stack.log"), logf: h.logf}
	defer h.stack.release()
	h.kafka = kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, VotesTopic: "tally.chaos." + h.runID + ".votes",
		DLQTopic: "tally.chaos." + h.runID + ".dlq", ReconcileTopic: "tally.chaos." + h.runID + ".reconcile",
		Group:           "tally-chaos-" + h.runID,
		VotesPartitions: 12, Replication: 1}
	h.env = h.processEnv()
	h.api = newClient(opt.addr, opt.requestTimeout, opt.maxInFlight)

	h.logf("run %s: keyspace %s, topics tally.chaos.%s.*, logs in %s", h.runID, h.keyspace, h.runID, h.outDir)
	h.logf("faults: %s; %.0f votes/s; warm %s, post %s, hold %s, cassandra pause %s", names(opt.faults), opt.rate,
		opt.warm, opt.post, opt.hold, opt.pause)
	if err := h.setUp(ctx); err != nil {
		h.tearDown()
		return nil, err
	}
	var rows []Row
	for _, f := range opt.faults {
		if ctx.Err() != nil {
			break
		}
		row := h.runPhase(ctx, f)
		h.logf("%s: %s", f.name, row.summary())
		rows = append(rows, row)
	}
	h.tearDown()
	printTable(out, h, rows)
	if opt.jsonPath != "" {
		path := opt.jsonPath
		if path == "auto" {
			path = filepath.Join(opt.outDir, "chaos-"+h.runID+".json")
		}
		if err := writeJSON(path, h, rows); err != nil {
			return rows, err
		}
		fmt.Fprintf(out, "\nJSON: %s\n", path)
	}
	if ctx.Err() != nil {
		return rows, ctx.Err()
	}
	return rows, nil
}

func names(fs []faultSpec) string {
	var n []string
	for _, f := range fs {
		n = append(n, f.name)
	}
	return strings.Join(n, ",")
}

// setUp creates the topics, migrates the keyspace through the binary, starts
// the API (without its in-process worker) and the worker, and registers the
// poll owner.
func (h *harness) setUp(ctx context.Context) error {
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := kafkax.EnsureTopics(tctx, h.kafka); err != nil {
		return fmt.Errorf("create topics (is the stack up? make up): %w", err)
	}
	for {
		err := kafkax.Ready(tctx, h.kafka)
		if err == nil {
			break
		}
		if tctx.Err() != nil {
			return fmt.Errorf("topics not ready: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := h.tallyCmd(ctx, 3*time.Minute, "migrate"); err != nil {
		return err
	}
	h.apiProc = &proc{name: "api", bin: h.opt.bin, args: []string{"serve", "--with-worker=false"}, env: h.env,
		logPath: filepath.Join(h.outDir, "api.log"), logf: h.logf}
	h.worker = &proc{name: "worker", bin: h.opt.bin, args: []string{"worker"}, env: h.env,
		logPath: filepath.Join(h.outDir, "worker.log"), logf: h.logf}
	if err := h.apiProc.start(); err != nil {
		return err
	}
	if err := waitHTTP(ctx, h.api0()+"/readyz", 90*time.Second); err != nil {
		return fmt.Errorf("api: %w (see %s)", err, h.apiProc.logPath)
	}
	if err := h.worker.start(); err != nil {
		return err
	}
	var err error
	h.owner, err = h.api.account(ctx, "chaos_"+h.runID[len(h.runID)-12:])
	return err
}

// tearDown stops our processes and, unless --keep, removes the keyspace and
// topics.
func (h *harness) tearDown() {
	if h.apiProc != nil {
		h.apiProc.stop()
	}
	if h.worker != nil {
		h.worker.stop()
	}
	if h.opt.keep {
		h.logf("kept keyspace %s and topics tally.chaos.%s.*", h.keyspace, h.runID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkax.DeleteTopics(ctx, h.kafka, h.kafka.VotesTopic, h.kafka.DLQTopic, h.kafka.ReconcileTopic); err != nil {
		h.logf("delete topics: %v", err)
	}
	if err := h.withSession(ctx, "", func(s gocqlx.Session) error {
		return s.Session.Query("DROP KEYSPACE IF EXISTS " + h.keyspace).WithContext(ctx).Exec()
	}); err != nil {
		h.logf("drop keyspace %s: %v", h.keyspace, err)
	}
}

// withSession opens a short-lived session (a fresh one survives Cassandra
// restarts between checks) on keyspace ("" for none).
func (h *harness) withSession(ctx context.Context, keyspace string, fn func(gocqlx.Session) error) error {
	cl := gocql.NewCluster("127.0.0.1:9042")
	cl.Keyspace = keyspace
	cl.Consistency = gocql.LocalQuorum
	cl.Timeout = 30 * time.Second
	cl.ConnectTimeout = 10 * time.Second
	cl.ProtoVersion = 4
	s, err := gocqlx.WrapSession(cl.CreateSession())
	if err != nil {
		return fmt.Errorf("connect cassandra: %w", err)
	}
	defer s.Close()
	return fn(s)
}

// committed is the sum of the worker group's committed offsets on the votes
// topic: it grows while the worker makes progress.
func (h *harness) committed(ctx context.Context) (int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(h.kafka.Brokers...), Timeout: 3 * time.Second}
	parts := make([]int, h.kafka.VotesPartitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: h.kafka.Group,
		Topics: map[string][]int{h.kafka.VotesTopic: parts}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	var sum int64
	for _, p := range resp.Topics[h.kafka.VotesTopic] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum, nil
}

// lag is the worker group's total lag, or -1 when Kafka does not answer.
func (h *harness) lag(ctx context.Context) int64 {
	byPart, err := kafkax.GroupLag(ctx, h.kafka, h.kafka.VotesTopic, h.kafka.Group)
	if err != nil {
		return -1
	}
	var n int64
	for _, v := range byPart {
		n += v
	}
	return n
}

// runPhase plays one fault: fresh polls, load, the fault, recovery under
// load, then the drain and the check.
func (h *harness) runPhase(ctx context.Context, f faultSpec) Row {
	t0 := time.Now()
	ph := &phase{name: f.name, outage: f.outage, led: &ledger{}, excused: map[*request]bool{}}
	crashes := h.apiProc.crashCount() + h.worker.crashCount()
	fail := func(err error) Row {
		return Row{Fault: f.name, NotRun: true, Notes: []string{"not run: " + err.Error()}, RecoveryS: -1}
	}
	if err := h.ensureReady(ctx); err != nil {
		return fail(fmt.Errorf("the API is not ready before the fault: %w", err))
	}
	polls, err := h.createPolls(ctx, f.name, h.opt.loadPolls, 4)
	if err != nil {
		return fail(err)
	}
	ph.polls = polls
	tokens := newTokenPool(ctx, h.api, int(min(h.opt.rate*30, 50_000))+64, 4)
	defer tokens.close()
	if err := tokens.fill(ctx, int(h.opt.rate*10)+64, time.Minute); err != nil {
		return fail(err)
	}
	h.logf("%s: %s; load on", f.name, f.about)
	l := h.startLoad(ctx, ph, tokens)
	injectErr := sleepCtx(ctx, h.opt.warm)
	if injectErr == nil {
		injectErr = f.inject(ctx, h, ph, l)
	}
	if injectErr == nil && f.outage {
		injectErr = sleepCtx(ctx, h.opt.post)
	}
	l.stop()
	if injectErr == nil && len(ph.closedOK) > 0 {
		injectErr = h.checkClosed(ctx, ph, tokens, "after the load")
	}
	h.logf("%s: load off (%d requests); draining", f.name, len(ph.led.reqs))
	row := h.check(ctx, ph)
	if injectErr != nil {
		row.Notes = append(row.Notes, "fault: "+injectErr.Error())
		row.Pass = false
	}
	if n := h.apiProc.crashCount() + h.worker.crashCount() - crashes; n > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("%d unexpected API/worker exits (restarted; see the logs)", n))
	}
	// A process that never heals is this fault's finding; the next fault
	// gets fresh processes rather than inheriting it.
	if ready, why := h.readiness(ctx, time.Minute); !ready && ctx.Err() == nil {
		row.Violations++
		row.Pass = false
		row.Notes = append(row.Notes, "the API was still not ready a minute after the check: "+why+
			" (API and worker restarted for the next fault)")
		h.restartProcesses()
	}
	row.DurationS = round1(time.Since(t0).Seconds())
	return row
}

// readiness polls /readyz for up to wait and returns the last answer.
func (h *harness) readiness(ctx context.Context, wait time.Duration) (bool, string) {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		a := h.api.do(ctx, "GET", "/readyz", "", nil, "")
		if a.status == http.StatusOK {
			return true, ""
		}
		last = fmt.Sprintf("/readyz %d %v", a.status, a.body["checks"])
		if a.err != nil {
			last = a.err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, last
		}
		_ = sleepCtx(ctx, time.Second)
	}
}

// ensureReady waits for /readyz, restarting the API and worker once if it
// does not come.
func (h *harness) ensureReady(ctx context.Context) error {
	if ok, _ := h.readiness(ctx, time.Minute); ok {
		return nil
	}
	h.restartProcesses()
	if ok, why := h.readiness(ctx, 90*time.Second); !ok {
		return fmt.Errorf("not ready after a restart of the API and worker: %s", why)
	}
	return nil
}

// restartProcesses gives the API and the worker a fresh start.
func (h *harness) restartProcesses() {
	h.logf("restarting the API and the worker")
	for _, p := range []*proc{h.apiProc, h.worker} {
		if err := p.kill(syscall.SIGTERM); err != nil {
			h.logf("stop %s: %v", p.name, err)
		}
		if err := p.start(); err != nil {
			h.logf("start %s: %v", p.name, err)
		}
	}
}
