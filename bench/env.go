package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is a tally process the bench started (or an external URL).
type server struct {
	url string
	cmd *exec.Cmd
	log *os.File
}

// benchEnv is the configuration every process of a bench run shares.
func (b *bench) benchEnv(mode string) []string {
	env := os.Environ()
	for k, v := range map[string]string{
		"TALLY_ENV":                   "dev",
		"TALLY_LOG_LEVEL":             "warn",
		"TALLY_HTTP_ADDR":             b.addr,
		"TALLY_WORKER_ADDR":           "127.0.0.1:0",
		"TALLY_JWT_SECRET":            b.secret,
		"TALLY_PPROF":                 "true",
		"TALLY_CASSANDRA_KEYSPACE":    b.keyspace,
		"TALLY_KAFKA_VOTES_TOPIC":     b.topic("votes"),
		"TALLY_KAFKA_DLQ_TOPIC":       b.topic("dlq"),
		"TALLY_KAFKA_RECONCILE_TOPIC": b.topic("reconcile"),
		// The run's own public events and webhook group, never the stack's
		// tally.events and tally-webhooks; webhook-hang's receivers are on
		// 127.0.0.1 (every scenario runs with the same setting).
		"TALLY_KAFKA_EVENTS_TOPIC":        b.topic("events"),
		"TALLY_WEBHOOK_GROUP":             "tally-bench-webhooks-" + b.runID,
		"TALLY_WEBHOOK_ALLOW_PRIVATE":     "true",
		"TALLY_KAFKA_GROUP":               "tally-bench-" + b.runID,
		"TALLY_RECONCILE_GROUP":           "tally-bench-reconciler-" + b.runID,
		"TALLY_RATE_DISABLE_PER_IP":       "true",
		"TALLY_RATE_POLL_CREATE_PER_HOUR": "0",
		"TALLY_VOTE_MODE":                 mode,
		// Every watcher of the live scenario comes from 127.0.0.1.
		"TALLY_HTTP_LIVE_MAX_PER_IP": "100000",
	} {
		env = append(env, k+"="+v)
	}
	// The GC settings Tally is deployed with (deploy/k8s, docker-compose),
	// unless the caller set its own.
	for k, v := range map[string]string{"GOGC": "400", "GOMEMLIMIT": "460MiB"} {
		if _, ok := os.LookupEnv(k); !ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (b *bench) topic(name string) string { return "tally.bench." + b.runID + "." + name }

// spawn starts `tally serve` and waits until /readyz answers 200.
func (b *bench) spawn(ctx context.Context, mode string, args ...string) (*server, error) {
	if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is already in use (a server left from an earlier run?)", b.addr)
	}
	logPath := filepath.Join(b.outDir, "server-"+b.runID+"-"+mode+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.binary, append([]string{"serve"}, args...)...)
	cmd.Env = b.benchEnv(mode)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{url: "http://" + b.addr, cmd: cmd, log: f}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("tally serve did not become ready; see %s", logPath)
}

// spawnWorker starts a `tally worker` process (the drain alone) with the
// run's settings, at the given LWT concurrency, its operator listener on a
// free port (server.url) so the sampler can read its recorded votes.
func (b *bench) spawnWorker(concurrency int) (*server, error) {
	f, err := os.Create(filepath.Join(b.outDir, "worker-"+b.runID+".log"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(b.binary, "worker")
	cmd.Env = append(b.benchEnv("async"), "TALLY_WORKER_ADDR="+addr, "TALLY_WORKER_CONCURRENCY="+strconv.Itoa(concurrency))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	return &server{url: "http://" + addr, cmd: cmd, log: f}, nil
}

func (s *server) pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.log.Close()
}

// cpuSeconds reads a process's user+system CPU time from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// findProcs maps role names to pids of the co-located servers.
func findProcs(extra map[string]int) map[string]int {
	out := map[string]int{"bench": os.Getpid()}
	for k, v := range extra {
		if v > 0 {
			out[k] = v
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		c := string(cmdline)
		switch {
		case strings.Contains(c, "org.apache.cassandra.service.CassandraDaemon"):
			out["cassandra"] = pid
		case strings.Contains(c, "kafka.Kafka"):
			out["kafka"] = pid
		case strings.Contains(c, "redis-server") && strings.Contains(c, "6380"):
			out["redis"] = pid
		}
	}
	return out
}

// maxStartLoad is the 1-minute load average above which a run is marked
// invalid: on two cores, a box already that busy measures its neighbours.
const maxStartLoad = 1.0

// loadAvg is the machine's load when a run starts.
type loadAvg struct {
	One     float64 `json:"load1"`
	Five    float64 `json:"load5"`
	Fifteen float64 `json:"load15"`
}

// Valid reports whether a run that started at this load may be cited.
func (l loadAvg) Valid() bool { return l.One <= maxStartLoad }

// settle waits, up to settleFor, for the 1-minute load to fall to the
// validity bound, so that the bench's own setup (a dropped keyspace) or the
// scenario before does not decide whether the next one counts. The load is
// read again after it, and recorded as it is.
func (b *bench) settle(ctx context.Context, what string) {
	l := readLoadAvg()
	if l.Valid() || b.settleFor <= 0 {
		return
	}
	b.logf("%s: 1-minute load %.2f; waiting up to %s for it to fall to %.1f", what, l.One, b.settleFor, maxStartLoad)
	deadline := time.Now().Add(b.settleFor)
	for !l.Valid() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Second)
		l = readLoadAvg()
	}
}

func readLoadAvg() loadAvg {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return loadAvg{}
	}
	var l loadAvg
	_, _ = fmt.Sscan(string(raw), &l.One, &l.Five, &l.Fifteen)
	return l
}
