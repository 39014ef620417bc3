# shellcheck shell=bash
# Redis from Debian's redis-server package, on 127.0.0.1:6380 with our own
# config (6380, not 6379, so the package's own daemon can never collide).

REDIS_PORT=6380
REDIS_CONF="$STACK_DIR/redis/redis.conf"
REDIS_DATA="$DATA_DIR/redis"
REDIS_OUT="$LOG_DIR/redis.log"
REDIS_PATTERN=redis-server   # redis rewrites its title to "redis-server 127.0.0.1:6380"

redis_install() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    die "redis-server/redis-cli not found. Install the Debian packages first: sudo apt-get install -y redis-server redis-tools"
  fi
  say "redis: installing Debian packages redis-server redis-tools ..."
  # The package's postinst may try to start its own daemon on 6379; that
  # fails harmlessly where there is no init system, hence `|| true` below.
  mkdir -p "$LOG_DIR"
  local aptlog="$LOG_DIR/apt-redis.log"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools; } >"$aptlog" 2>&1; then
    show_log_tail "$aptlog"
    die "redis: apt-get install redis-server redis-tools failed (full output: $aptlog)"
  fi
  # We never use 6379. If the package started its own daemon there, stop it
  # (we just installed it, so it is ours to stop) to free memory.
  if [[ "$(redis-cli -p 6379 ping 2>/dev/null)" == PONG ]]; then
    service redis-server stop >/dev/null 2>&1 || true
  fi
}

redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_start() {
  local pid
  if pid=$(running_pid redis "$REDIS_PATTERN"); then
    say "redis: already running (pid $pid)"
    return 0
  fi
  require_free_ports redis "$REDIS_PORT"
  command -v redis-server >/dev/null || die "redis-server not installed (run: deploy/local/stack install)"
  mkdir -p "$REDIS_DATA" "$RUN_DIR" "$LOG_DIR"
  rotate_log "$REDIS_OUT"
  say "redis: starting ..."
  # daemonize yes (in redis.conf): redis forks, detaches and writes the pid
  # file itself. Command-line options override the config file's.
  redis-server "$REDIS_CONF" --dir "$REDIS_DATA" --pidfile "$(pidfile redis)" --logfile "$REDIS_OUT" ||
    die "redis: redis-server failed to start (see $REDIS_OUT)"
  local i
  for ((i = 0; i < 20; i++)); do [[ -s "$(pidfile redis)" ]] && break; sleep 0.25; done
}

redis_wait() {
  wait_for redis 30 "$REDIS_PATTERN" redis_ready "$REDIS_OUT" || return 1
  say "redis: PONG on 127.0.0.1:$REDIS_PORT"
}

redis_stop_signal() { stop_signal redis "$REDIS_PATTERN"; }
redis_stop_wait()   { stop_wait redis "$REDIS_PATTERN"; }

redis_status() {
  local pid state=down note=""
  if pid=$(running_pid redis "$REDIS_PATTERN"); then
    if redis_ready; then state=up; else state=starting; fi
  elif port_open "$REDIS_PORT"; then
    state=foreign note="  [port held by a process this script did not start]"
  fi
  printf '%-10s %-9s pid %-8s 127.0.0.1:%s%s\n' redis "$state" "${pid:--}" "$REDIS_PORT" "$note"
}

redis_logs() {
  printf '===== %s\n' "$REDIS_OUT"
  [[ -f "$REDIS_OUT" ]] && tail -n "${LINES_TO_SHOW:-30}" "$REDIS_OUT"
  return 0
}
