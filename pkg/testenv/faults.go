package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// ServerPID returns the pid of a local stack server (cassandra, kafka,
// redis) from the pid file `make up` wrote.
func ServerPID(t testing.TB, server string) int {
	t.Helper()
	dir := os.Getenv("TALLY_LOCAL_DIR")
	if dir == "" {
		_, here, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(here), "..", "..", ".local")
	}
	b, err := os.ReadFile(filepath.Join(dir, "run", server+".pid"))
	if err != nil {
		t.Fatalf("pid of %s (is the stack up?): %v", server, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file of %s: %v", server, err)
	}
	return pid
}

// Pause SIGSTOPs a local stack server: it keeps its sockets open and
// answers nothing, as a hung process or a long GC pause does. The returned
// resume SIGCONTs it; it also runs when the test ends, so a failing test
// never leaves the shared server frozen.
func Pause(t testing.TB, server string) (resume func()) {
	t.Helper()
	pid := ServerPID(t, server)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s (pid %d): %v", server, pid, err)
	}
	resumed := false
	resume = func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	return resume
}

// Restart stops and starts a local stack server with the stack script
// (`deploy/local/stack restart SERVER`), as an operator or a crash-looping
// host would, and waits until it answers again.
func Restart(t testing.TB, server string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "deploy", "local", "stack")
	out, err := exec.Command(script, "restart", server).CombinedOutput()
	if err != nil {
		t.Fatalf("restart %s: %v\n%s", server, err, out)
	}
}
