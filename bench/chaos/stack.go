package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lockPath tells everyone sharing the local stack that a chaos fault is
// stopping, hanging or restarting one of its servers right now.
const lockPath = "/tmp/tally-chaos.lock"

// stack runs deploy/local/stack for faults on the shared servers. Every
// fault it starts is undone by the harness (deferred, with a fresh context)
// and, should the harness die first, by a detached watchdog.
type stack struct {
	script string
	log    string // where the script's output goes
	logf   func(format string, args ...any)

	mu    sync.Mutex
	token string // this process's lock token while it holds the lock
}

// findStack looks for deploy/local/stack from dir upwards.
func findStack(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "deploy", "local", "stack")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("deploy/local/stack not found above %s (give --stack)", dir)
		}
	}
}

// run executes `stack args...` and waits for it.
func (s *stack) run(ctx context.Context, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n===== chaos: stack %s at %s\n", strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	var out strings.Builder
	cmd := exec.CommandContext(ctx, s.script, args...)
	cmd.Stdout, cmd.Stderr = f, &out
	err = cmd.Run()
	f.WriteString(out.String())
	if err != nil {
		return fmt.Errorf("stack %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 400))
	}
	return nil
}

// acquire takes the lock file for a fault, waiting (bounded) while another
// live process holds it. A lock whose holder is gone is stale and taken over.
func (s *stack) acquire(ctx context.Context, fault string, wait time.Duration) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	body := fmt.Sprintf("pid=%d fault=%s since=%s token=%s\n", os.Getpid(), fault, time.Now().Format(time.RFC3339), token)
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, werr := f.WriteString(body)
			f.Close()
			if werr != nil {
				os.Remove(lockPath)
				return werr
			}
			s.mu.Lock()
			s.token = token
			s.mu.Unlock()
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", lockPath, err)
		}
		held, _ := os.ReadFile(lockPath)
		if pid := lockPid(string(held)); pid <= 0 || syscall.Kill(pid, 0) != nil {
			s.logf("removing stale %s (%s)", lockPath, strings.TrimSpace(string(held)))
			os.Remove(lockPath)
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is held by another process (%s)", lockPath, strings.TrimSpace(string(held)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func lockPid(body string) int {
	for _, f := range strings.Fields(body) {
		if v, ok := strings.CutPrefix(f, "pid="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// release removes the lock file if it is still ours.
func (s *stack) release() {
	s.mu.Lock()
	token := s.token
	s.token = ""
	s.mu.Unlock()
	if token == "" {
		return
	}
	if held, err := os.ReadFile(lockPath); err == nil && strings.Contains(string(held), "token="+token) {
		os.Remove(lockPath)
	}
}

// watchdog starts a detached process that, after the given delay, runs the
// recovery command and removes our lock: the fault is undone even if the
// harness is SIGKILLed or panics while a server is stopped or paused. The
// returned function cancels it once the harness has recovered by itself.
func (s *stack) watchdog(after time.Duration, recoverArgs ...string) func() {
	s.mu.Lock()
	token := s.token
	s.mu.Unlock()
	script := `sleep "$1"; shift; lock=$1 token=$2; shift 2; "$@"; grep -qs "token=$token" "$lock" && rm -f "$lock"`
	args := append([]string{"-c", script, "chaos-watchdog", strconv.Itoa(int(after.Seconds()) + 1), lockPath, token, s.script},
		recoverArgs...)
	cmd := exec.Command("bash", args...)
	if f, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
		defer f.Close()
	}
	// Its own session: it must survive us, and we kill it as a group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		s.logf("watchdog for `stack %s` did not start: %v", strings.Join(recoverArgs, " "), err)
		return func() {}
	}
	return func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

// sharedFault runs inject against a shared server under the lock and a
// watchdog, and always runs recover afterwards with a fresh context, however
// inject ended. It returns when the server answers again.
func (h *harness) sharedFault(ctx context.Context, ph *phase, server string, maxHold time.Duration,
	inject func(ctx context.Context) error, recoverArgs []string) (err error) {
	if err := h.stack.acquire(ctx, ph.name, h.opt.lockWait); err != nil {
		return err
	}
	defer h.stack.release()
	// Recovery (stack up/resume) can take a while; the watchdog allows for
	// the whole hold plus a start-up.
	cancelWatchdog := h.stack.watchdog(maxHold+90*time.Second, recoverArgs...)
	defer cancelWatchdog()
	defer func() {
		ph.faultEnd = time.Now()
		h.logf("%s: recovering %s (stack %s)", ph.name, server, strings.Join(recoverArgs, " "))
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if rerr := h.stack.run(rctx, 5*time.Minute, recoverArgs...); rerr != nil {
			err = errors.Join(err, rerr)
			return
		}
		h.logf("%s: %s is back after %.1f s", ph.name, server, time.Since(ph.faultEnd).Seconds())
	}()
	ph.faultStart = time.Now()
	return inject(ctx)
}
