#!/usr/bin/env bash
# Run a real single-node Apache Cassandra 5.0 on 127.0.0.1 from Maven Central jars
# (no Docker, no tarball): scripts/cassandra.sh start|stop [--wipe]|status|logs [-f]
#
# Environment (all optional):
#   CASSANDRA_WORKDIR        jar cache + node dirs       (default: <repo>/.cassandra)
#   CASSANDRA_PORT           CQL port                    (default: 9042)
#   CASSANDRA_STORAGE_PORT   inter-node port             (default: 7000 + CASSANDRA_PORT - 9042,
#                            so nodes on 9042 and 9043 get 7000 and 7001)
#   CASSANDRA_NUM_TOKENS     vnodes                      (default: 16, several token ranges)
#   CASSANDRA_HEAP           -Xms/-Xmx                   (default: 2G)
#   CASSANDRA_AUTH           "password": PasswordAuthenticator + CassandraAuthorizer
#                            (user cassandra/cassandra); anything else: no auth
#   CASSANDRA_TLS_KEYSTORE, CASSANDRA_TLS_KEYSTORE_PASSWORD
#                            keystore path turns on client TLS (required, not optional)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL     (default: 180)
#   CASSANDRA_FAST_UNSAFE    1: skip fsync (tests only; data may be lost on a crash)
#   JAVA_BIN, MVN_BIN        java / mvn executables      (default: found on PATH)
#
# Exit codes: 0 ok, 1 start failed, 2 prerequisite or port problem, 3 (status) not running.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${CASSANDRA_WORKDIR:-$REPO_ROOT/.cassandra}
PORT=${CASSANDRA_PORT:-9042}
JAVA_BIN=${JAVA_BIN:-java}
MVN_BIN=${MVN_BIN:-mvn}
# Newest 5.0.x; a range (not a pinned version) so patch releases are picked up.
VERSION_RANGE='[5.0.0,5.1)'

LIB=$WORKDIR/lib
MARKER=$LIB/.complete            # written only after a full, successful copy of the jars
NODE=$WORKDIR/node-$PORT
CONF=$NODE/conf
LOG=$NODE/logs/system.log
PIDFILE=$NODE/cassandra.pid
DAEMON_CLASS=org.apache.cassandra.service.CassandraDaemon
# Native protocol v4 OPTIONS frame: version, flags, stream (2), opcode 0x05, body length 0.
OPTIONS_FRAME='\x04\x00\x00\x00\x05\x00\x00\x00\x00'

die() { local code=$1; shift; echo "cassandra.sh: $*" >&2; exit "$code"; }

is_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1024 && $1 <= 65535)); }

is_port "$PORT" || die 2 "CASSANDRA_PORT=$PORT is not a port number in 1024-65535"
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-$((7000 + PORT - 9042))}
is_port "$STORAGE_PORT" ||
    die 2 "storage port $STORAGE_PORT (from CQL port $PORT) is invalid; set CASSANDRA_STORAGE_PORT"

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True if a CQL server answers an OPTIONS request on 127.0.0.1:$1 with SUPPORTED
# (reply header: version byte 0x84 = response v4, opcode 0x06). No Python, no cqlsh.
cql_answers() {
    local port=$1 reply rc
    # Status: 7 = connection refused, 124 = no reply in time, else reply or peer closed/reset.
    # shellcheck disable=SC2016 # $1/$2 are expanded by the inner bash, on purpose
    reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 7
        printf "$2" >&3; head -c 9 <&3' _ "$port" "$OPTIONS_FRAME" 2>/dev/null |
        od -An -tx1 | tr -d ' \n'; exit "${PIPESTATUS[0]}") && rc=0 || rc=$?
    if [[ -z $reply && $rc != 7 && $rc != 124 ]] && command -v openssl >/dev/null; then
        # Closed or reset without a reply: a TLS-only node resets plaintext at once, so ask again
        # over TLS. The sleep keeps stdin open long enough to read the reply; with
        # -no_ign_eof the session then ends at stdin EOF.
        reply=$({ printf '%b' "$OPTIONS_FRAME"; sleep 1; } |
            timeout 4 openssl s_client -quiet -no_ign_eof -connect "127.0.0.1:$port" 2>/dev/null |
            head -c 9 | od -An -tx1 | tr -d ' \n') || true
    fi
    [[ $reply == 84??????06* ]]
}

# Prints the pid from our pid file if that process is alive and is the CassandraDaemon
# launched with this node's config (a recycled pid must never be signalled).
our_pid() {
    local pid cmd
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    else
        cmd=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
    fi
    [[ $cmd == *java* && $cmd == *"$DAEMON_CLASS"* && $cmd == *"$CONF/cassandra.yaml"* ]] || return 1
    echo "$pid"
}

installed_version() {
    local jar
    for jar in "$LIB"/cassandra-all-*.jar; do
        [[ -f $jar ]] || continue
        jar=${jar##*/cassandra-all-}
        echo "${jar%.jar}"
        return 0
    done
    return 1
}

# Download cassandra-all and its runtime jars once; later starts do not call mvn at all.
ensure_jars() {
    if [[ -f $MARKER ]] && installed_version >/dev/null; then return 0; fi
    command -v "$MVN_BIN" >/dev/null ||
        die 2 "mvn not found (MVN_BIN=$MVN_BIN): install Maven 3 (e.g. apt-get install maven) or set MVN_BIN"
    mkdir -p "$WORKDIR"
    exec 8>"$WORKDIR/.download.lock"
    flock 8 # a parallel start on another port may be downloading the same jars
    if [[ -f $MARKER ]] && installed_version >/dev/null; then exec 8>&-; return 0; fi
    local range=$VERSION_RANGE bad version
    for _ in 1 2 3; do
        # If the newest version in the range cannot be resolved, exclude it and retry.
        cat >"$WORKDIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cassandra.sh: only used to fetch Cassandra's jars into lib/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cassandra</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$range</version>
    </dependency>
  </dependencies>
</project>
EOF
        rm -rf "$LIB"
        echo "Resolving org.apache.cassandra:cassandra-all $range with Maven..."
        if (cd "$WORKDIR" && "$MVN_BIN" -B -q dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$LIB") >"$WORKDIR/mvn.log" 2>&1; then
            version=$(installed_version) || die 1 "Maven succeeded but no cassandra-all jar in $LIB"
            [[ $version =~ ^5\.0\.[0-9]+$ ]] ||
                die 1 "resolved cassandra-all $version, which is not a 5.0.x release"
            echo "$version" >"$MARKER"
            exec 8>&-
            echo "Downloaded Cassandra $version ($(find "$LIB" -name '*.jar' | wc -l) jars) into $LIB"
            return 0
        fi
        bad=$(grep -o 'cassandra-all:jar:5\.0\.[0-9]*' "$WORKDIR/mvn.log" | head -n1 | cut -d: -f3) || true
        [[ -n $bad ]] || break
        echo "cassandra-all $bad did not resolve; trying older 5.0.x"
        range="[5.0.0,$bad)"
    done
    tail -n 20 "$WORKDIR/mvn.log" >&2
    die 1 "could not download cassandra-all $VERSION_RANGE (full log: $WORKDIR/mvn.log)"
}

write_config() {
    local num_tokens=${CASSANDRA_NUM_TOKENS:-16}
    [[ $num_tokens =~ ^[1-9][0-9]*$ ]] || die 2 "CASSANDRA_NUM_TOKENS=$num_tokens is not a positive integer"
    mkdir -p "$CONF" "$NODE"/{data,commitlog,saved_caches,hints,cdc_raw,triggers,tmp,logs}
    # Minimal on purpose: every key exists in 5.0's Config class; unknown keys abort start-up.
    # A cluster name per port keeps two local nodes from ever joining each other.
    cat >"$CONF/cassandra.yaml" <<EOF
# Generated by scripts/cassandra.sh on every start; edits are overwritten.
cluster_name: local-$PORT
num_tokens: $num_tokens
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$STORAGE_PORT"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $STORAGE_PORT
start_native_transport: true
native_transport_port: $PORT
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories:
  - $NODE/data
commitlog_directory: $NODE/commitlog
saved_caches_directory: $NODE/saved_caches
hints_directory: $NODE/hints
cdc_raw_directory: $NODE/cdc_raw
# Dropping or truncating test tables should not leave snapshots behind.
auto_snapshot: false
# Cassandra sizes its own thread pools from this: the machine's real cores.
available_processors: $(nproc)
EOF
    if [[ ${CASSANDRA_AUTH:-} == password ]]; then
        cat >>"$CONF/cassandra.yaml" <<EOF
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
EOF
    else
        cat >>"$CONF/cassandra.yaml" <<EOF
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
EOF
    fi
    if [[ -n ${CASSANDRA_TLS_KEYSTORE:-} ]]; then
        [[ -r $CASSANDRA_TLS_KEYSTORE ]] || die 2 "CASSANDRA_TLS_KEYSTORE=$CASSANDRA_TLS_KEYSTORE is not a readable file"
        local ks pw q="'"
        ks=$(cd "$(dirname "$CASSANDRA_TLS_KEYSTORE")" && pwd)/$(basename "$CASSANDRA_TLS_KEYSTORE")
        pw=${CASSANDRA_TLS_KEYSTORE_PASSWORD:-}
        # YAML single-quoted scalars: the only escape is '' for a quote.
        ks=${ks//$q/$q$q} pw=${pw//$q/$q$q}
        # optional: false = the CQL port accepts TLS only.
        cat >>"$CONF/cassandra.yaml" <<EOF
client_encryption_options:
  enabled: true
  optional: false
  keystore: '$ks'
  keystore_password: '$pw'
EOF
    fi
    # The jar ships no logback config; without one the console gets DEBUG output.
    cat >"$CONF/logback.xml" <<EOF
<!-- Generated by scripts/cassandra.sh on every start. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>$LOG</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>$NODE/logs/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
EOF
}

jvm_args() {
    local heap=${CASSANDRA_HEAP:-2G} jamm
    local -a a=(
        "-Xms$heap" "-Xmx$heap" -Xss256k -XX:+UseG1GC -XX:+ParallelRefProcEnabled
        -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m -XX:MaxGCPauseMillis=300
        -XX:+ExitOnOutOfMemoryError
        # jvector (SAI vector index) lets at most availableProcessors+1 threads add to one
        # memtable's graph and fails the write of any further thread; on a 2-core machine
        # that is 3, and writes from many native-transport threads fail. Cassandra's own
        # pools follow available_processors in the yaml, so only jvector sees this figure.
        -XX:ActiveProcessorCount=256 -Djvector.physical_core_count="$(nproc)"
        -XX:ParallelGCThreads="$(nproc)" -XX:ConcGCThreads=1 -XX:CICompilerCount=2
        # Keep stdout/stderr open after start-up (they go to logs/stdout.log).
        -Dcassandra-foreground=yes
        "-Dcassandra.config=file://$CONF/cassandra.yaml"
        "-Dcassandra.storagedir=$NODE" "-Dcassandra.logdir=$NODE/logs"
        "-Dcassandra.triggers_dir=$NODE/triggers"
        "-Dlogback.configurationFile=$CONF/logback.xml"
        # JNA unpacks native code into the tmpdir; /tmp may be noexec or shared.
        "-Djava.io.tmpdir=$NODE/tmp" "-Djna.tmpdir=$NODE/tmp"
        -Djava.net.preferIPv4Stack=true -Dchronicle.analytics.disable=true
        -Djdk.attach.allowAttachSelf=true
        # Single node: nothing to gossip with, and the default superuser without the 10 s delay.
        -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.superuser_setup_delay_ms=0
        # Cassandra 5.0 conf/jvm17-server.options (JPMS + netty).
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
    )
    # Modules only present in a full JDK (not a JRE); naming a missing one prints a warning.
    if "$JAVA_BIN" --list-modules 2>/dev/null | grep -q '^jdk.compiler@'; then
        a+=(--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
            --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
            --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED)
    fi
    # jamm measures object sizes for memtable accounting, as bin/cassandra.in.sh does.
    for jamm in "$LIB"/jamm-*.jar; do [[ -f $jamm ]] && a+=("-javaagent:$jamm"); break; done
    if [[ ${CASSANDRA_FAST_UNSAFE:-0} == 1 ]]; then
        a+=(-Dcassandra.unsafesystem=true -Dcassandra.skip_sync=true)
    fi
    printf '%s\n' "${a[@]}"
}

stop_pid() { # pid, seconds before SIGKILL
    local pid=$1 wait=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < wait * 2; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "pid $pid still alive after ${wait}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
}

# A fresh node creates the default superuser just after CQL opens; with password auth,
# a login in that window fails, so on first boot also wait for that log line.
AWAIT_SUPERUSER=0
LOG_OFFSET=0
superuser_ready() {
    ((AWAIT_SUPERUSER)) || return 0
    tail -c +"$((LOG_OFFSET + 1))" "$LOG" 2>/dev/null | grep -q 'Created default superuser role'
}

wait_for_cql() { # pid, start time (epoch s), version
    local pid=$1 t0=$2 version=$3 limit=${CASSANDRA_START_TIMEOUT:-180} why=
    [[ $limit =~ ^[0-9]+$ ]] || die 2 "CASSANDRA_START_TIMEOUT=$limit is not a number of seconds"
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then why="the node process (pid $pid) exited"; break; fi
        if cql_answers "$PORT" && superuser_ready; then
            echo "Cassandra $version ready on 127.0.0.1:$PORT (pid $pid, $(($(date +%s) - t0)) s)"
            return 0
        fi
        if (($(date +%s) - t0 >= limit)); then
            why="no CQL answer within ${limit}s (CASSANDRA_START_TIMEOUT)"
            break
        fi
        sleep 1
    done
    if [[ -s $LOG ]]; then
        echo "cassandra.sh: start failed: $why. Last 30 lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2
    else
        echo "cassandra.sh: start failed: $why; no node log at $LOG" >&2
    fi
    if [[ -s $NODE/logs/stdout.log ]]; then
        echo "--- last 10 lines of $NODE/logs/stdout.log:" >&2
        tail -n 10 "$NODE/logs/stdout.log" >&2
    fi
    stop_pid "$pid" 10
    rm -f "$PIDFILE"
    exit 1
}

cmd_start() {
    command -v "$JAVA_BIN" >/dev/null ||
        die 2 "java not found (JAVA_BIN=$JAVA_BIN): install Java 17 (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_BIN"
    mkdir -p "$WORKDIR"
    # Serialise concurrent starts of the same node; fd 9 is closed for the daemon below.
    exec 9>"$WORKDIR/.start-$PORT.lock"
    flock 9
    local pid version t0
    if pid=$(our_pid); then
        if cql_answers "$PORT"; then
            echo "Reusing the Cassandra node already answering CQL on 127.0.0.1:$PORT (ours, pid $pid)"
            return 0
        fi
        echo "Our node (pid $pid) is still starting on port $PORT; waiting for it"
        wait_for_cql "$pid" "$(stat -c %Y "$PIDFILE")" "$(installed_version || echo 5.0)"
        return 0
    fi
    rm -f "$PIDFILE" # stale: the recorded process is gone or is not ours
    if cql_answers "$PORT"; then
        echo "Reusing the Cassandra node already answering CQL on 127.0.0.1:$PORT (not started by this script)"
        return 0
    fi
    port_open "$PORT" &&
        die 2 "port $PORT is held by a program that does not answer CQL; stop it or set CASSANDRA_PORT to a free port"
    port_open "$STORAGE_PORT" &&
        die 2 "storage port $STORAGE_PORT is in use; stop that program or set CASSANDRA_STORAGE_PORT"

    ensure_jars
    version=$(installed_version)
    write_config
    if [[ ${CASSANDRA_AUTH:-} == password && -z $(ls -A "$NODE/data") ]]; then
        AWAIT_SUPERUSER=1
        LOG_OFFSET=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
    fi
    local -a args
    mapfile -t args < <(jvm_args)
    echo "Starting Cassandra $version on 127.0.0.1:$PORT (storage port $STORAGE_PORT, node dir $NODE)"
    t0=$(date +%s)
    # setsid: own session, so the node survives the caller's terminal/process group.
    # A background job of a script is never a group leader, so setsid execs in place
    # and $! is the java pid.
    (cd "$NODE" && exec setsid nohup "$JAVA_BIN" "${args[@]}" -cp "$CONF:$LIB/*" "$DAEMON_CLASS" \
        >"$NODE/logs/stdout.log" 2>&1 </dev/null 9>&- 8>&-) &
    pid=$!
    echo "$pid" >"$PIDFILE"
    wait_for_cql "$pid" "$t0" "$version"
}

cmd_stop() {
    local wipe=0 pid
    case ${1:-} in
        --wipe) wipe=1 ;;
        '') ;;
        *) die 2 "usage: $0 stop [--wipe]" ;;
    esac
    if pid=$(our_pid); then
        echo "Stopping Cassandra on port $PORT (pid $pid)"
        stop_pid "$pid" 60
        rm -f "$PIDFILE"
        echo "Stopped"
    elif [[ -f $PIDFILE ]]; then
        rm -f "$PIDFILE"
        echo "No node of ours is running on port $PORT (removed stale pid file); nothing to stop"
    else
        echo "No node started by this script is recorded for port $PORT ($NODE); nothing to stop"
    fi
    if ((wipe)); then
        rm -rf "$NODE"/{data,commitlog,saved_caches,hints,cdc_raw}
        echo "Wiped data of $NODE"
    fi
}

cmd_status() {
    local pid
    if pid=$(our_pid); then
        if cql_answers "$PORT"; then
            echo "running: Cassandra on 127.0.0.1:$PORT (ours, pid $pid)"
            return 0
        fi
        echo "not running: our node (pid $pid) on port $PORT does not answer CQL yet"
        return 3
    fi
    if cql_answers "$PORT"; then
        echo "running: a Cassandra node answers on 127.0.0.1:$PORT but was not started by this script"
        return 0
    fi
    if port_open "$PORT"; then
        echo "not running: port $PORT is held by a program that does not answer CQL"
    else
        echo "not running: nothing answers CQL on 127.0.0.1:$PORT"
    fi
    return 3
}

cmd_logs() {
    [[ -f $LOG ]] || die 1 "no node log at $LOG"
    if [[ ${1:-} == -f ]]; then exec tail -n 50 -F "$LOG"; fi
    tail -n 50 "$LOG"
}

case ${1:-} in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    *) die 2 "usage: $0 start|stop [--wipe]|status|logs [-f]" ;;
esac
