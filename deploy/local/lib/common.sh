# shellcheck shell=bash
# Shared helpers for deploy/local/stack: messages, Java lookup, Maven jar
# fetching, pid files, port checks, background start/stop, readiness waits.
# Sourced by `stack`; expects STACK_DIR, LOCAL_DIR, RUN_DIR, LOG_DIR, DATA_DIR,
# LIB_DIR to be set.

say()  { printf '[stack] %s\n' "$*"; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die()  { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch (for elapsed-time reports).
now() { date +%s; }

# ---------------------------------------------------------------- Java ----
# Cassandra 5.0 runs on Java 11/17 only (18+ trips its SecurityManager use,
# 24+ cannot run it), and Kafka 4.x brokers need 17+. So: Java 17, exactly.
# Order: $TALLY_JAVA, $JAVA_HOME (if it is 17), the Debian JDK 17, `java`.
java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

find_java() {
  [[ -n "${STACK_JAVA:-}" ]] && return 0
  local c
  for c in "${TALLY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
           /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk/bin/java \
           "$(command -v java || true)"; do
    [[ -n "$c" && -x "$c" ]] || continue
    if [[ -n "${TALLY_JAVA:-}" || "$(java_major "$c")" == 17 ]]; then export STACK_JAVA=$c; return 0; fi
  done
  die "no Java 17 found (Cassandra 5.0 needs 11/17, Kafka 4 needs 17). Install openjdk-17-jdk-headless or set TALLY_JAVA=/path/to/java"
}

# ------------------------------------------------------ jars from Maven ----
# fetch_jars NAME: copy the runtime dependency tree of deploy/local/NAME/pom.xml
# into $LIB_DIR/NAME. A marker file holding the pom's checksum makes re-runs
# free; editing the pom (e.g. a version bump) triggers a clean re-fetch. The
# copy goes to a temp dir first, so an interrupted fetch never looks complete.
fetch_jars() {
  local name=$1 pom="$STACK_DIR/$1/pom.xml" dest="$LIB_DIR/$1"
  local marker="$dest/.complete" sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f "$marker" && "$(cat "$marker")" == "$sum" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven) to fetch the $name jars"
  say "fetching $name jars with Maven into $dest (first time only) ..."
  local tmp="$dest.tmp.$$" mvnlog="$LIB_DIR/maven-$name.log"
  rm -rf "$dest".tmp.*          # leftovers of an interrupted fetch
  mkdir -p "$tmp"
  # Output goes to a log (even -q leaves ANSI colour resets behind); shown
  # only on failure.
  if ! mvn -B -q -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
       -DincludeScope=runtime -Dmdep.prependGroupId=true -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    show_log_tail "$mvnlog"
    die "Maven could not fetch the $name jars (full output: $mvnlog)"
  fi
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$sum" >"$marker"
  say "$name: $(find "$dest" -name '*.jar' | wc -l) jars in $dest"
}

# -------------------------------------------------------- pids & ports ----
pidfile() { echo "$RUN_DIR/$1.pid"; }

# running_pid NAME PATTERN: print the pid from NAME's pid file if that process
# is alive AND its command line contains PATTERN (guards against pid reuse:
# we never signal a process we did not start). Removes a stale pid file.
running_pid() {
  local f pid
  f=$(pidfile "$1")
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
     tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"; then
    echo "$pid"
    return 0
  fi
  rm -f "$f"
  return 1
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# require_free_ports NAME PORT...: refuse to start if another process holds
# one of our fixed ports (typical: a leftover server from another checkout).
require_free_ports() {
  local name=$1 p
  shift
  for p in "$@"; do
    if port_open "$p"; then
      local who=""
      command -v ss >/dev/null && who=$(ss -ltnpH "sport = :$p" 2>/dev/null | grep -o 'users:.*' | head -1 || true)
      die "$name: port 127.0.0.1:$p is already in use by a process this script did not start ${who:+($who)}; stop it first"
    fi
  done
}

# rotate_log FILE: keep the previous run's log as FILE.1 so each start's log
# begins empty (easy to read on failure).
rotate_log() { [[ -s "$1" ]] && mv -f "$1" "$1.1"; return 0; }

# start_bg NAME LOGFILE CMD...: run CMD detached (own session via setsid, so
# closing the calling terminal / make / CI job does not kill it), stdin from
# /dev/null, stdout+stderr appended to LOGFILE, pid into NAME's pid file.
start_bg() {
  local name=$1 log=$2
  shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

# stop_signal NAME PATTERN: send SIGTERM to NAME's process (if ours and alive).
stop_signal() {
  local pid
  if pid=$(running_pid "$1" "$2"); then
    say "$1: stopping pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
  fi
}

# signal_server NAME PATTERN SIGNAL: send SIGNAL (STOP, CONT, ...) to NAME's
# process if it is ours and alive, and print its pid; die otherwise.
signal_server() {
  local pid
  pid=$(running_pid "$1" "$2") || die "$1: not running (no live process from $(pidfile "$1"))"
  kill -"$3" "$pid" || die "$1: kill -$3 $pid failed"
  echo "$pid"
}

# server_paused PID: the process is stopped by a signal (state T in /proc).
server_paused() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [[ "$state" == T ]]
}

# stop_wait NAME PATTERN: wait up to 30 s for NAME to exit, then SIGKILL.
stop_wait() {
  local name=$1 pat=$2 pid i
  pid=$(running_pid "$name" "$pat") || { say "$name: down"; return 0; }
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name: pid $pid still alive after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$(pidfile "$name")"
  say "$name: down"
}

# show_log_tail FILE...: last 40 lines of each existing, non-empty file.
show_log_tail() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf '\n----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
  printf -- '-----\n' >&2
}

# wait_for NAME TIMEOUT_S PID_PATTERN CHECK_FN LOGFILE...: poll CHECK_FN every
# 2 s until it succeeds. Fails early if the process dies; on failure prints the
# log tails and returns 1.
wait_for() {
  local name=$1 limit=$2 pat=$3 check=$4 start
  shift 4
  start=$(now)
  while true; do
    if "$check"; then
      say "$name: ready after $(($(now) - start)) s"
      return 0
    fi
    if ! running_pid "$name" "$pat" >/dev/null; then
      printf '[stack] ERROR: %s: process exited during start-up\n' "$name" >&2
      show_log_tail "$@"
      return 1
    fi
    if (($(now) - start >= limit)); then
      printf '[stack] ERROR: %s: not ready after %s s (process still running; see logs)\n' "$name" "$limit" >&2
      show_log_tail "$@"
      return 1
    fi
    sleep 2
  done
}
