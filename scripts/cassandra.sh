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
#   CASSANDRA_MAX_REQUESTS_PER_SECOND  a request quota: native_transport_rate_limiting_enabled with
#                            this native_transport_max_requests_per_second (default: none)
#   CASSANDRA_THROW_ON_OVERLOAD  1: past the quota the node answers "overloaded" (to protocol v5
#                            clients; v4 ones it still holds back) rather than holding requests back
#   CASSANDRA_PARTITIONER    Murmur3Partitioner (default) or RandomPartitioner: a node like the
#                            old clusters the migration refuses
#   CASSANDRA_SIZE_RECORDER_INTERVAL  seconds between size estimates (default: 10; Cassandra's: 300)
#   JAVA_BIN, MVN_BIN        java / mvn executables      (default: found on PATH)
#
# Exit codes: 0 ok, 1 start failed, 2 prerequisite or port problem, 3 (status) not running.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cassandra-common.sh
. "$REPO_ROOT/scripts/cassandra-common.sh"
PROG=cassandra.sh
WORKDIR=${CASSANDRA_WORKDIR:-$REPO_ROOT/.cassandra}
PORT=${CASSANDRA_PORT:-9042}
JAVA_BIN=${JAVA_BIN:-java}
MVN_BIN=${MVN_BIN:-mvn}
HOST=127.0.0.1

lib_paths
node_paths "$WORKDIR/node-$PORT"

is_port "$PORT" || die 2 "CASSANDRA_PORT=$PORT is not a port number in 1024-65535"
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-$((7000 + PORT - 9042))}
is_port "$STORAGE_PORT" ||
    die 2 "storage port $STORAGE_PORT (from CQL port $PORT) is invalid; set CASSANDRA_STORAGE_PORT"

# write_config / jvm_args settings. A cluster name per port, and a seed that names this node's
# own storage port, keep two local nodes from ever joining each other.
CLUSTER_NAME=local-$PORT
SEEDS=$HOST:$STORAGE_PORT
SNITCH=SimpleSnitch
NUM_TOKENS=${CASSANDRA_NUM_TOKENS:-16}
AUTH=${CASSANDRA_AUTH:-}
TLS_KEYSTORE=${CASSANDRA_TLS_KEYSTORE:-}
TLS_KEYSTORE_PASSWORD=${CASSANDRA_TLS_KEYSTORE_PASSWORD:-}
EXTRA_YAML=
QUOTA=${CASSANDRA_MAX_REQUESTS_PER_SECOND:-}
if [[ -n $QUOTA ]]; then
    [[ $QUOTA =~ ^[1-9][0-9]*$ ]] || die 2 "CASSANDRA_MAX_REQUESTS_PER_SECOND=$QUOTA is not a positive integer"
    # A request quota, as a hosted database has one: past it the node holds requests back.
    EXTRA_YAML="native_transport_rate_limiting_enabled: true
native_transport_max_requests_per_second: $QUOTA"
fi
if [[ ${CASSANDRA_THROW_ON_OVERLOAD:-0} == 1 ]]; then
    EXTRA_YAML="$EXTRA_YAML
native_transport_throw_on_overload: true"
fi
PARTITIONER=${CASSANDRA_PARTITIONER:-Murmur3Partitioner}
[[ $PARTITIONER == Murmur3Partitioner || $PARTITIONER == RandomPartitioner ]] ||
    die 2 "CASSANDRA_PARTITIONER=$PARTITIONER: give Murmur3Partitioner or RandomPartitioner"
HEAP=${CASSANDRA_HEAP:-2G}
FAST_UNSAFE=${CASSANDRA_FAST_UNSAFE:-0}
# The default superuser at once rather than after 10 s (one node: the first try succeeds).
SUPERUSER_SETUP_DELAY_MS=0

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
        if cql_answers "$HOST" "$PORT" && superuser_ready; then
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
        if cql_answers "$HOST" "$PORT"; then
            echo "Reusing the Cassandra node already answering CQL on 127.0.0.1:$PORT (ours, pid $pid)"
            return 0
        fi
        echo "Our node (pid $pid) is still starting on port $PORT; waiting for it"
        wait_for_cql "$pid" "$(stat -c %Y "$PIDFILE")" "$(installed_version || echo 5.0)"
        return 0
    fi
    rm -f "$PIDFILE" # stale: the recorded process is gone or is not ours
    if cql_answers "$HOST" "$PORT"; then
        echo "Reusing the Cassandra node already answering CQL on 127.0.0.1:$PORT (not started by this script)"
        return 0
    fi
    port_open "$HOST" "$PORT" &&
        die 2 "port $PORT is held by a program that does not answer CQL; stop it or set CASSANDRA_PORT to a free port"
    port_open "$HOST" "$STORAGE_PORT" &&
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
    launch_node "${args[@]}"
    pid=$LAUNCHED_PID
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
        if cql_answers "$HOST" "$PORT"; then
            echo "running: Cassandra on 127.0.0.1:$PORT (ours, pid $pid)"
            return 0
        fi
        echo "not running: our node (pid $pid) on port $PORT does not answer CQL yet"
        return 3
    fi
    if cql_answers "$HOST" "$PORT"; then
        echo "running: a Cassandra node answers on 127.0.0.1:$PORT but was not started by this script"
        return 0
    fi
    if port_open "$HOST" "$PORT"; then
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
