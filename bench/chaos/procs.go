package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a tally process the harness owns: it starts it, kills it on
// purpose, and restarts it when it exits on its own.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	logf    func(format string, args ...any)

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expectExit bool
	stopping   bool
	starts     int
	// crashes counts exits the harness did not cause; each is restarted.
	crashes int
}

// start launches the process; its output is appended to logPath.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked()
}

func (p *proc) startLocked() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(f, "\n===== chaos: %s start #%d at %s\n", p.name, p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Our children must not outlive us: a harness that dies leaves no API
	// or worker behind on the shared stack.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expectExit = cmd, done, false
	go func() {
		err := cmd.Wait()
		f.Close()
		close(done)
		p.exited(cmd, err)
	}()
	return nil
}

// exited restarts a process that died without the harness asking: a crash
// is a finding (reported in the fault's notes), not a reason to stop.
func (p *proc) exited(cmd *exec.Cmd, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != cmd || p.expectExit || p.stopping {
		return
	}
	p.crashes++
	p.logf("%s exited on its own (%v); restarting it in 2 s (see %s)", p.name, err, p.logPath)
	go func() {
		time.Sleep(2 * time.Second)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd == cmd && !p.stopping {
			if err := p.startLocked(); err != nil {
				p.logf("restart %s: %v", p.name, err)
			}
		}
	}()
}

// kill sends sig and waits until the process is gone.
func (p *proc) kill(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.expectExit = true
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// stop ends the process for good: SIGTERM, then SIGKILL after 30 s.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	running := p.cmd != nil
	p.mu.Unlock()
	if running {
		_ = p.kill(syscall.SIGTERM)
	}
}

// alive reports whether the process is running.
func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) crashCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes
}

// waitHTTP polls url until it answers 200 or the timeout passes.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s (last: %s)", url, timeout, last)
}

// checkLoopback refuses any listen address but 127.0.0.1: the harness sends
// its traffic nowhere else.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("--addr %q: the harness only talks to 127.0.0.1", addr)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s is already in use (a server left from an earlier run?)", addr)
	}
	return nil
}

// processEnv is the environment of every tally process of the run: this
// run's keyspace, topics and groups, the load-test switch for per-IP limits,
// no limit on poll creation (the races create many polls from one account),
// and the caller's --env overrides last so they win.
func (h *harness) processEnv() []string {
	env := os.Environ()
	kv := [][2]string{
		{"TALLY_ENV", "dev"},
		{"TALLY_LOG_LEVEL", "info"},
		{"TALLY_HTTP_ADDR", h.opt.addr},
		// The worker's operator listener on a free port: a run never
		// collides with another tally worker on this machine.
		{"TALLY_WORKER_ADDR", "127.0.0.1:0"},
		{"TALLY_PUBLIC_URL", "http://" + h.opt.addr},
		{"TALLY_JWT_SECRET", h.secret},
		{"TALLY_CASSANDRA_HOSTS", "127.0.0.1:9042"},
		{"TALLY_CASSANDRA_KEYSPACE", h.keyspace},
		{"TALLY_REDIS_ADDR", "127.0.0.1:6380"},
		{"TALLY_KAFKA_BROKERS", "127.0.0.1:9092"},
		{"TALLY_KAFKA_VOTES_TOPIC", h.kafka.VotesTopic},
		{"TALLY_KAFKA_DLQ_TOPIC", h.kafka.DLQTopic},
		{"TALLY_KAFKA_RECONCILE_TOPIC", h.kafka.ReconcileTopic},
		{"TALLY_KAFKA_GROUP", h.kafka.Group},
		{"TALLY_RECONCILE_GROUP", "tally-chaos-reconciler-" + h.runID},
		{"TALLY_VOTE_MODE", "async"},
		{"TALLY_RATE_DISABLE_PER_IP", "true"},
		{"TALLY_RATE_POLL_CREATE_PER_HOUR", "0"},
		// The slow-body row's trickles come from a forwarded address of
		// their own; every other request is the loopback client.
		{"TALLY_TRUSTED_PROXIES", "127.0.0.1"},
	}
	for _, p := range kv {
		env = append(env, p[0]+"="+p[1])
	}
	for _, e := range h.opt.env {
		if strings.Contains(e, "=") {
			env = append(env, e)
		}
	}
	return env
}

// tallyCmd runs a short-lived tally subcommand (migrate, reconcile) with the
// run's environment and returns its output.
func (h *harness) tallyCmd(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.opt.bin, args...)
	cmd.Env = h.env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("tally %s: %w: %s", strings.Join(args, " "), err, tail(errb.String(), 600))
	}
	return []byte(out.String()), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
