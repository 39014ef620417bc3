# shellcheck shell=bash
# Cassandra 5.0 single node, run straight from the cassandra-all jar and its
# dependency tree (no tarball): CQL 127.0.0.1:9042, JMX 7199, storage 7000.

CASSANDRA_CQL_PORT=9042
CASSANDRA_JMX_PORT=7199
CASSANDRA_STORAGE_PORT=7000
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon
CASSANDRA_CONF="$STACK_DIR/cassandra"
CASSANDRA_LIB="$LIB_DIR/cassandra"
CASSANDRA_DATA="$DATA_DIR/cassandra"
CASSANDRA_LOGDIR="$LOG_DIR/cassandra"        # system.log (logback)
CASSANDRA_OUT="$LOG_DIR/cassandra.log"       # JVM stdout/stderr (WARN+ and crashes)

cassandra_install() { fetch_jars cassandra; }

# file:// URL for a path (cassandra.config must be a URL, not a path).
file_url() { local p=${1// /%20}; echo "file://$p"; }

# ---------------------------------------------------------------- CQL -----
# cql_exec QUERY: run one CQL statement over the native protocol (v4) using
# bash's /dev/tcp, without cqlsh or a driver: STARTUP -> READY, QUERY at
# consistency ONE -> RESULT or ERROR. Prints the response body with
# non-printable bytes replaced by spaces. Returns 0 on RESULT, 1 on ERROR,
# 2 if the server is not reachable / not speaking CQL yet. CQL_HOST picks
# the address (default 127.0.0.1; deploy/local/multidc uses 127.0.0.2/.3).
cql_exec() (
  local q=$1 fd hdr op len qlen
  exec {fd}<>"/dev/tcp/${CQL_HOST:-127.0.0.1}/$CASSANDRA_CQL_PORT" 2>/dev/null || return 2
  # header: version 4, flags 0, stream 0, opcode 0x01 STARTUP, body length 22
  # body: string map of 1 entry {"CQL_VERSION": "3.0.0"}
  printf '\x04\x00\x00\x00\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0' >&"$fd"
  hdr=$(timeout 10 head -c 9 <&"$fd" | od -An -v -tx1 | tr -d ' \n')
  [[ "${hdr:8:2}" == 02 ]] || return 2                     # 0x02 READY
  # QUERY (0x07): [long string] query, [short] consistency ONE, [byte] flags 0
  qlen=$(printf '%s' "$q" | wc -c)                         # bytes, not chars
  len=$((4 + qlen + 3))
  # shellcheck disable=SC2059 # be32 emits \x escapes meant for the format
  printf "\\x04\\x00\\x00\\x01\\x07$(be32 "$len")$(be32 "$qlen")" >&"$fd"
  printf '%s\x00\x01\x00' "$q" >&"$fd"
  hdr=$(timeout 30 head -c 9 <&"$fd" | od -An -v -tx1 | tr -d ' \n')
  [[ ${#hdr} -eq 18 ]] || return 2
  op=${hdr:8:2}
  len=$((16#${hdr:10:8}))
  ((len == 0)) || timeout 30 head -c "$len" <&"$fd" | LC_ALL=C tr -c '[:print:]' ' '
  echo
  [[ "$op" == 08 ]] && return 0                            # 0x08 RESULT
  return 1
)

# be32 N: N as 4 big-endian bytes in printf \x escapes.
be32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }

# Ready = the CQL port answers a real query (not just an open socket).
cassandra_ready() {
  port_open "$CASSANDRA_CQL_PORT" || return 1
  local out
  out=$(cql_exec "SELECT release_version FROM system.local" 2>/dev/null) || return 1
  CASSANDRA_VERSION=$(grep -oE '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' <<<"${out##*release_version}" | head -1)
  [[ -n "$CASSANDRA_VERSION" ]]
}

# ---------------------------------------------------------- lifecycle -----
# cassandra_start: start the JVM in the background (does not wait).
cassandra_start() {
  local pid
  if pid=$(running_pid cassandra "$CASSANDRA_MAIN"); then
    say "cassandra: already running (pid $pid)"
    return 0
  fi
  require_free_ports cassandra "$CASSANDRA_CQL_PORT" "$CASSANDRA_JMX_PORT" "$CASSANDRA_STORAGE_PORT"
  find_java
  local jamm
  jamm=$(compgen -G "$CASSANDRA_LIB/com.github.jbellis.jamm-*.jar" | head -1) ||
    die "cassandra: jamm agent jar missing in $CASSANDRA_LIB (run: deploy/local/stack install)"
  mkdir -p "$CASSANDRA_DATA/triggers" "$CASSANDRA_LOGDIR"
  rotate_log "$CASSANDRA_OUT"
  local heap=${CASSANDRA_HEAP:-1G}
  local -a extra=()
  # CASSANDRA_EXTRA_OPTS: extra JVM flags, e.g. -Dcassandra.settings.KEY=VALUE
  # to override a cassandra.yaml key for one run.
  read -r -a extra <<<"${CASSANDRA_EXTRA_OPTS:-}"
  # Durability knob (see the commitlog comment in cassandra.yaml). batch and
  # group refuse to start while commitlog_sync_period is set, so zero it.
  case ${CASSANDRA_COMMITLOG_SYNC:-periodic} in
    periodic) ;;
    batch) extra+=(-Dcassandra.settings.commitlog_sync=batch -Dcassandra.settings.commitlog_sync_period=0ms) ;;
    group) extra+=(-Dcassandra.settings.commitlog_sync=group -Dcassandra.settings.commitlog_sync_period=0ms
                   -Dcassandra.settings.commitlog_sync_group_window="${CASSANDRA_COMMITLOG_GROUP_WINDOW:-10ms}") ;;
    *) die "CASSANDRA_COMMITLOG_SYNC must be periodic, batch or group" ;;
  esac
  say "cassandra: starting (heap $heap, commitlog_sync ${CASSANDRA_COMMITLOG_SYNC:-periodic}) ..."
  start_bg cassandra "$CASSANDRA_OUT" "$STACK_JAVA" \
    @"$CASSANDRA_CONF/jvm17.options" @"$CASSANDRA_CONF/jvm-server.options" \
    -Xms"$heap" -Xmx"$heap" \
    -javaagent:"$jamm" \
    -Dcassandra.config="$(file_url "$CASSANDRA_CONF/cassandra.yaml")" \
    -Dcassandra.storagedir="$CASSANDRA_DATA" \
    -Dcassandra.triggers_dir="$CASSANDRA_DATA/triggers" \
    -Dcassandra.logdir="$CASSANDRA_LOGDIR" \
    -Dlogback.configurationFile="$(file_url "$CASSANDRA_CONF/logback.xml")" \
    -Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" \
    -XX:HeapDumpPath="$CASSANDRA_LOGDIR" -XX:ErrorFile="$CASSANDRA_LOGDIR/hs_err_%p.log" \
    "${extra[@]}" \
    -cp "$CASSANDRA_LIB/*" "$CASSANDRA_MAIN"
}

cassandra_wait() {
  # 180 s: a cold first boot on 2 busy cores (Kafka starting too) is slow.
  wait_for cassandra "${CASSANDRA_START_TIMEOUT:-180}" "$CASSANDRA_MAIN" cassandra_ready \
    "$CASSANDRA_LOGDIR/system.log" "$CASSANDRA_OUT" || return 1
  say "cassandra: Cassandra $CASSANDRA_VERSION answering CQL on 127.0.0.1:$CASSANDRA_CQL_PORT"
}

cassandra_stop_signal() { stop_signal cassandra "$CASSANDRA_MAIN"; }
cassandra_stop_wait()   { stop_wait cassandra "$CASSANDRA_MAIN"; }

cassandra_status() {
  local pid state=down note=""
  if pid=$(running_pid cassandra "$CASSANDRA_MAIN"); then
    if cassandra_ready; then state=up; else state=starting; fi
  elif port_open "$CASSANDRA_CQL_PORT"; then
    state=foreign note="  [port held by a process this script did not start]"
  fi
  printf '%-10s %-9s pid %-8s cql 127.0.0.1:%s  jmx 127.0.0.1:%s%s\n' cassandra "$state" "${pid:--}" \
    "$CASSANDRA_CQL_PORT" "$CASSANDRA_JMX_PORT" "${CASSANDRA_VERSION:+  (Cassandra $CASSANDRA_VERSION)}$note"
}

cassandra_logs() {
  local f
  for f in "$CASSANDRA_LOGDIR/system.log" "$CASSANDRA_OUT"; do
    printf '===== %s\n' "$f"
    [[ -f "$f" ]] && tail -n "${LINES_TO_SHOW:-30}" "$f"
  done
}

# --------------------------------------------------------------- tools ----
# Real nodetool: same classpath and module flags as the server, JMX 7199.
cassandra_nodetool() {
  [[ -f "$CASSANDRA_LIB/.complete" ]] || die "cassandra jars not installed (run: deploy/local/stack install)"
  find_java
  exec "$STACK_JAVA" @"$CASSANDRA_CONF/jvm17.options" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dcassandra.storagedir="$CASSANDRA_DATA" \
    -Dlogback.configurationFile="$(file_url "$CASSANDRA_CONF/logback-tools.xml")" \
    -cp "$CASSANDRA_LIB/*" org.apache.cassandra.tools.NodeTool \
    -h 127.0.0.1 -p "$CASSANDRA_JMX_PORT" "$@"
}

# `stack cql "STATEMENT"`: crude one-statement runner for scripts (DDL, smoke
# checks). Not a cqlsh: rows are shown as raw printable text.
cassandra_cql() {
  [[ $# -eq 1 ]] || die 'usage: stack cql "CQL STATEMENT"'
  local out rc=0
  out=$(cql_exec "$1") || rc=$?
  case $rc in
    0) echo "${out:-ok}" ;;
    1) echo "CQL error: $out" >&2; return 1 ;;
    *) echo "Cassandra not reachable on 127.0.0.1:$CASSANDRA_CQL_PORT" >&2; return 2 ;;
  esac
}
