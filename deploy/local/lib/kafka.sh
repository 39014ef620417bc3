# shellcheck shell=bash
# Kafka 4.x single node in KRaft combined mode (broker + controller in one
# JVM), run from the kafka_2.13 + kafka-tools jars: PLAINTEXT 127.0.0.1:9092,
# controller 127.0.0.1:9093.

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_MAIN=kafka.Kafka
KAFKA_CONF="$STACK_DIR/kafka"
KAFKA_LIB="$LIB_DIR/kafka"
KAFKA_DATA="$DATA_DIR/kafka"
KAFKA_PROPS="$RUN_DIR/kafka-server.properties"   # effective file (generated)
KAFKA_OUT="$LOG_DIR/kafka.log"

# Topics the Go code expects: NAME:PARTITIONS (all replication factor 1).
KAFKA_TOPICS=(tally.votes:12 tally.votes.dlq:1 tally.reconcile:3)

kafka_install() { fetch_jars kafka; }

# kafka_tool CLASS ARGS...: run a short-lived Kafka CLI class. Small heap,
# C1 only and serial GC: these JVMs live for a second or two.
kafka_tool() {
  find_java
  "$STACK_JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_CONF/tools-log4j2.properties" \
    -cp "$KAFKA_LIB/*" "$@"
}

# StorageTool lives in kafka.tools (Scala) up to at least 4.4; later releases
# may move it to org.apache.kafka.tools. Jar central directories store class
# names uncompressed, so a plain grep finds which one this version has.
kafka_storage_tool_class() {
  if grep -qaF 'org/apache/kafka/tools/StorageTool.class' "$KAFKA_LIB"/*.jar; then
    echo org.apache.kafka.tools.StorageTool
  else
    echo kafka.tools.StorageTool
  fi
}

# Write the effective server.properties (absolute log.dirs) into .local/run.
kafka_render_props() {
  mkdir -p "$KAFKA_DATA"
  sed "s|@LOG_DIRS@|$KAFKA_DATA|" "$KAFKA_CONF/server.properties" >"$KAFKA_PROPS"
}

# Format the KRaft storage once. The cluster id is then persisted by Kafka
# itself in $KAFKA_DATA/meta.properties; later starts reuse it.
kafka_format() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local id
  # Kafka cluster ids are 16 random bytes in URL-safe base64 (22 chars).
  # Avoid a leading '-', which the CLI would parse as an option.
  while id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'); [[ $id == -* ]]; do :; done
  say "kafka: formatting storage in $KAFKA_DATA (cluster id $id)"
  kafka_tool "$(kafka_storage_tool_class)" format -t "$id" -c "$KAFKA_PROPS" --ignore-formatted >/dev/null ||
    die "kafka: storage format failed"
}

kafka_start() {
  local pid
  if pid=$(running_pid kafka "$KAFKA_MAIN"); then
    say "kafka: already running (pid $pid)"
    return 0
  fi
  require_free_ports kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  find_java
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  kafka_render_props
  kafka_format
  rotate_log "$KAFKA_OUT"
  local heap=${KAFKA_HEAP:-512m}
  say "kafka: starting (heap $heap) ..."
  start_bg kafka "$KAFKA_OUT" "$STACK_JAVA" -Xms"$heap" -Xmx"$heap" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1 \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dlog4j2.configurationFile="$KAFKA_CONF/log4j2.properties" \
    -XX:ErrorFile="$LOG_DIR/kafka_hs_err_%p.log" \
    -cp "$KAFKA_LIB/*" "$KAFKA_MAIN" "$KAFKA_PROPS"
}

# kafka_topics ARGS...: TopicCommand against our broker, with short client
# timeouts so it fails fast while the broker is still starting.
kafka_topics() {
  [[ -f "$KAFKA_LIB/.complete" ]] || die "kafka jars not installed (run: deploy/local/stack install)"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$KAFKA_CONF/admin-client.properties" "$@"
}

# Ready = the broker answers a metadata request (topic list).
KAFKA_TOPIC_LIST=""
kafka_ready() {
  port_open "$KAFKA_PORT" || return 1
  # `timeout` cannot run a shell function, so re-invoke this script.
  KAFKA_TOPIC_LIST=$(timeout 30 "$STACK_SCRIPT" kafka-topics --list 2>/dev/null) || return 1
}

# Create the missing Tally topics (idempotent: existing ones are kept as is).
kafka_create_topics() {
  local t name parts
  for t in "${KAFKA_TOPICS[@]}"; do
    name=${t%%:*} parts=${t##*:}
    grep -qxF "$name" <<<"$KAFKA_TOPIC_LIST" && continue
    say "kafka: creating topic $name ($parts partitions, RF 1)"
    kafka_topics --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null ||
      { warn "kafka: could not create topic $name"; return 1; }
  done
}

kafka_wait() {
  wait_for kafka "${KAFKA_START_TIMEOUT:-120}" "$KAFKA_MAIN" kafka_ready "$KAFKA_OUT" || return 1
  kafka_create_topics || return 1
  say "kafka: answering on 127.0.0.1:$KAFKA_PORT; topics: ${KAFKA_TOPICS[*]%%:*}"
}

kafka_stop_signal() { stop_signal kafka "$KAFKA_MAIN"; }
kafka_stop_wait()   { stop_wait kafka "$KAFKA_MAIN"; }

kafka_status() {
  local pid state=down note=""
  if pid=$(running_pid kafka "$KAFKA_MAIN"); then
    if port_open "$KAFKA_PORT"; then state=up; else state=starting; fi
  elif port_open "$KAFKA_PORT"; then
    state=foreign note="  [port held by a process this script did not start]"
  fi
  printf '%-10s %-9s pid %-8s plaintext 127.0.0.1:%s  controller 127.0.0.1:%s%s\n' kafka "$state" "${pid:--}" \
    "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$note"
}

kafka_logs() {
  printf '===== %s\n' "$KAFKA_OUT"
  [[ -f "$KAFKA_OUT" ]] && tail -n "${LINES_TO_SHOW:-30}" "$KAFKA_OUT"
  return 0
}
