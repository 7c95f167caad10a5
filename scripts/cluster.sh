#!/usr/bin/env bash
# Run a real multi-node Apache Cassandra 5.0 cluster on this machine from the same Maven
# Central jars as scripts/cassandra.sh (no Docker): node I listens on 127.0.0.I (all of 127/8
# is loopback on Linux), every node on the same CQL and storage ports; one ring, node 1 is
# the seed.
#
#   scripts/cluster.sh start              start every node that is not running (a fresh cluster:
#                                         all at once) and wait until each answers CQL and sees
#                                         every other running node UP
#   scripts/cluster.sh stop [--wipe]      stop every node (SIGTERM, SIGKILL after 60 s);
#                                         --wipe: kill them (SIGKILL: no drain, the data goes)
#                                         and delete the data, for a fresh cluster
#   scripts/cluster.sh status             one line per node; exit 0 only if every node answers CQL
#   scripts/cluster.sh stop-node I        stop node I gracefully (it announces its shutdown)
#   scripts/cluster.sh kill I             kill -9 node I (a crash: the others mark it DOWN when
#                                         their failure detector convicts it, 10-20 s here)
#   scripts/cluster.sh start-node I       (re)start node I; waits until it answers CQL and it and
#                                         the other running nodes see each other UP
#   scripts/cluster.sh logs I [-f]        the last 50 lines of node I's system.log (-f: follow)
# I is a node number 1..CLUSTER_NODES (node1 and 127.0.0.1 are accepted too).
#
# Environment (all optional):
#   CASSANDRA_WORKDIR        jar cache (lib/, shared with cassandra.sh) + cluster-<port>/node<I>/
#                            (default: <repo>/.cassandra)
#   CLUSTER_NODES            number of nodes             (default: 3; fixed at the first start:
#                            `stop --wipe` first to change it)
#   CLUSTER_PORT             CQL port of every node      (default: 9044; cassandra.sh's node
#                            uses 9042)
#   CLUSTER_STORAGE_PORT     inter-node port of every node (default: 7000 + CLUSTER_PORT - 9042,
#                            7002 for 9044)
#   CLUSTER_DC               datacenter name             (default: datacenter1, as SimpleSnitch
#                            names it; GossipingPropertyFileSnitch, one rack: rack1)
#   CLUSTER_HEAP             -Xms/-Xmx of each node      (default: 1G)
#   CLUSTER_START_TIMEOUT    seconds start/start-node wait (default: 180)
#   CLUSTER_SEQUENTIAL       1: start nodes one after another (default: 0, all at once)
#   CLUSTER_JIT              c1: -XX:TieredStopAtLevel=1, about half the start-up CPU, slower
#                            hot code (for short tests); full: both JIT tiers (default)
#   CASSANDRA_NUM_TOKENS     vnodes per node             (default: 16)
#   CASSANDRA_FAST_UNSAFE    1: skip fsync (tests only; data may be lost on a crash)
#   CASSANDRA_SIZE_RECORDER_INTERVAL  seconds between size estimates (default: 10; Cassandra's: 300)
#   JAVA_BIN, MVN_BIN        java / mvn executables      (default: found on PATH)
# No authentication and no client TLS (cassandra.sh has those).
#
# The cluster name is local-cluster-<CQL port> and the seed is 127.0.0.1:<storage port>, so a
# cluster never joins cassandra.sh's node (local-<port>, seed on its own storage port) nor a
# cluster on another port. Only nodes this script started (their pid files) are ever signalled.
#
# Exit codes: 0 ok, 1 start failed, 2 usage, prerequisite or port problem,
#             3 (status) not every node answers CQL.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cassandra-common.sh
. "$REPO_ROOT/scripts/cassandra-common.sh"
PROG=cluster.sh
USAGE="usage: $0 start|stop [--wipe]|status|stop-node I|kill I|start-node I|logs I [-f]"
WORKDIR=${CASSANDRA_WORKDIR:-$REPO_ROOT/.cassandra}
PORT=${CLUSTER_PORT:-9044}
JAVA_BIN=${JAVA_BIN:-java}
MVN_BIN=${MVN_BIN:-mvn}
lib_paths

is_port "$PORT" || die 2 "CLUSTER_PORT=$PORT is not a port number in 1024-65535"
STORAGE_PORT=${CLUSTER_STORAGE_PORT:-$((7000 + PORT - 9042))}
is_port "$STORAGE_PORT" ||
    die 2 "storage port $STORAGE_PORT (from CQL port $PORT) is invalid; set CLUSTER_STORAGE_PORT"
((STORAGE_PORT != PORT)) || die 2 "the storage port and the CQL port are both $PORT"
DC=${CLUSTER_DC:-datacenter1}
[[ $DC =~ ^[A-Za-z0-9_-]+$ ]] || die 2 "CLUSTER_DC=$DC: use letters, digits, _ and - only"
JIT=${CLUSTER_JIT:-full}
[[ $JIT == full || $JIT == c1 ]] || die 2 "CLUSTER_JIT=$JIT: use full or c1"
TIMEOUT=${CLUSTER_START_TIMEOUT:-180}
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die 2 "CLUSTER_START_TIMEOUT=$TIMEOUT is not a number of seconds"

CDIR=$WORKDIR/cluster-$PORT
COUNT_FILE=$CDIR/nodes # the node count, written when the cluster is first started
N=${CLUSTER_NODES:-3}
if ! [[ $N =~ ^[1-9][0-9]*$ ]] || ((N > 254)); then die 2 "CLUSTER_NODES=$N is not a number in 1-254"; fi
if [[ -f $COUNT_FILE ]]; then
    RECORDED=$(<"$COUNT_FILE")
    [[ $RECORDED =~ ^[1-9][0-9]*$ ]] || die 2 "$COUNT_FILE is damaged; run: $0 stop --wipe"
    if [[ -n ${CLUSTER_NODES:-} ]] && ((CLUSTER_NODES != RECORDED)); then
        # Only start refuses: stop and status always act on the recorded nodes.
        if [[ ${1:-} == start ]]; then
            die 2 "the cluster on port $PORT has $RECORDED nodes, not CLUSTER_NODES=$CLUSTER_NODES; run \`$0 stop --wipe\` first to change it"
        fi
    fi
    N=$RECORDED
fi

# write_config / jvm_args settings shared by every node.
CLUSTER_NAME=local-cluster-$PORT
SEEDS=127.0.0.1:$STORAGE_PORT
# Gossips its datacenter and rack (from conf/cassandra-rackdc.properties), as production
# clusters do; SimpleSnitch would also say datacenter1/rack1 but cannot name another DC.
SNITCH=GossipingPropertyFileSnitch
NUM_TOKENS=${CASSANDRA_NUM_TOKENS:-16}
AUTH='' TLS_KEYSTORE='' TLS_KEYSTORE_PASSWORD=''
# Nodes of a fresh, empty cluster take random tokens and join without streaming, so they can
# all start at once. (Restarts keep their tokens in system.local; this changes nothing there.)
EXTRA_YAML="auto_bootstrap: false"
HEAP=${CLUSTER_HEAP:-1G}
FAST_UNSAFE=${CASSANDRA_FAST_UNSAFE:-0}
# Cassandra's default (10 s), not cassandra.sh's 0: the role setup retries at this interval
# while any node is down, and at 0 ms it spins, logging two lines each time (50 MB a minute).
SUPERUSER_SETUP_DELAY_MS=''

select_node() { # node number
    I=$1
    HOST=127.0.0.$I
    node_paths "$CDIR/node$I"
    OFFSET_FILE=$NODE/log-offset # the log_mark when this process was launched
}

node_arg() { # "2", "node2" or "127.0.0.2": prints 2
    local i=${1:-}
    i=${i#node} i=${i#127.0.0.}
    [[ $i =~ ^[1-9][0-9]*$ ]] && ((i <= N)) && echo "$i" && return 0
    die 2 "no node '${1:-}': give a node number 1-$N"
}

# A position in a node's log that survives rotation: "<byte offset> <inode of system.log>".
log_mark() { stat -c '%s %i' "$LOG" 2>/dev/null || echo 0 0; }

# The text of the node's log (rotated files included) from a log_mark on.
log_since() { # mark
    local off=${1%% *} inode=${1##* } f found=0
    local -a files=()
    for f in "$LOG".3 "$LOG".2 "$LOG".1 "$LOG"; do [[ -f $f ]] && files+=("$f"); done
    for f in "${files[@]}"; do [[ $(stat -c %i "$f") == "$inode" ]] && found=1; done
    for f in "${files[@]}"; do
        if ((found)); then
            [[ $(stat -c %i "$f") == "$inode" ]] || continue
            found=0 # from here on, whole files
            tail -c +"$((off + 1))" "$f"
        else
            cat "$f"
        fi
    done
}

# How node $1's current process sees node $2, from its log since launch (or since mark $3):
# UP, DOWN or "" (no word yet). Cassandra logs "InetAddress /<ip>:<port> is now UP" (or DOWN)
# at each change.
seen_as() {
    local from=$1 to=$2 mark=${3:-} line
    select_node "$from"
    [[ -n $mark ]] || mark=$(cat "$OFFSET_FILE" 2>/dev/null || echo 0 0)
    line=$(log_since "$mark" | grep -E "/127\.0\.0\.$to:$STORAGE_PORT is now (UP|DOWN)" | tail -n 1) || true
    case $line in
        *"is now UP"*) echo UP ;;
        *"is now DOWN"*) echo DOWN ;;
    esac
}

node_log_tail() { # node number: the end of its logs, for a failed start
    select_node "$1"
    if [[ -s $LOG ]]; then
        echo "--- last 20 lines of $LOG:" >&2
        tail -n 20 "$LOG" >&2
    fi
    if [[ -s $NODE/logs/stdout.log ]]; then
        echo "--- last 10 lines of $NODE/logs/stdout.log:" >&2
        tail -n 10 "$NODE/logs/stdout.log" >&2
    fi
}

# SIGTERM every given pid at once, then wait for all (SIGKILL after $1 seconds).
stop_pids() { # seconds, pid...
    local wait=$1 pid alive i
    shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < wait * 2; i++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.5
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid still alive after ${wait}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < 20; i++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.5
    done
}

# Refuse to start node $1 on addresses held by anything else (checked before any launch).
check_ports() {
    select_node "$1"
    if cql_answers "$HOST" "$PORT"; then
        die 2 "$HOST:$PORT answers CQL but is not node $I of this cluster (no live pid in $NODE); stop it or set CLUSTER_PORT"
    fi
    port_open "$HOST" "$PORT" &&
        die 2 "port $HOST:$PORT is held by a program that does not answer CQL; stop it or set CLUSTER_PORT to a free port"
    port_open "$HOST" "$STORAGE_PORT" &&
        die 2 "storage port $HOST:$STORAGE_PORT is in use; stop that program or set CLUSTER_STORAGE_PORT"
    return 0
}

launch() { # node number
    select_node "$1"
    write_config
    printf 'dc=%s\nrack=rack1\n' "$DC" >"$CONF/cassandra-rackdc.properties"
    local -a args
    mapfile -t args < <(jvm_args)
    if [[ $JIT == c1 ]]; then args+=(-XX:TieredStopAtLevel=1); fi
    log_mark >"$OFFSET_FILE"
    launch_node "${args[@]}"
    # Until the background subshell has exec'd java, our_pid does not recognise the pid.
    local n
    for ((n = 0; n < 100; n++)); do
        our_pid >/dev/null && break
        kill -0 "$LAUNCHED_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "Starting node$I on $HOST:$PORT (storage port $STORAGE_PORT, pid $LAUNCHED_PID, dir $NODE)"
}

# The nodes whose process is ours and alive, space-separated.
running_nodes() {
    local i out=
    for ((i = 1; i <= N; i++)); do
        select_node "$i"
        if our_pid >/dev/null; then out+="$i "; fi
    done
    echo "${out% }"
}

# Wait until every running node answers CQL and, for every pair of running nodes of which
# one is in NEW (nodes started by this command), each sees the other UP in its log since
# OFFSET[node] (the log_mark when this command started that node or began waiting).
# On failure: stop the nodes in NEW, exit 1.
declare -A OFFSET=() NEW=() ANSWERED=()
wait_ready() { # start time
    local t0=$1 i j why='' running pending pid
    while :; do
        running=$(running_nodes)
        for i in "${!NEW[@]}"; do
            if [[ " $running " != *" $i "* ]]; then why="node$i's process exited"; break 2; fi
        done
        pending=
        for i in $running; do
            select_node "$i"
            if [[ -z ${ANSWERED[$i]:-} ]]; then
                if cql_answers "$HOST" "$PORT"; then
                    ANSWERED[$i]=1
                    if [[ -n ${NEW[$i]:-} ]]; then
                        echo "node$i answers CQL on $HOST:$PORT ($(($(date +%s) - t0)) s)"
                    fi
                else
                    pending+=" node$i: no CQL answer yet;"
                    continue
                fi
            fi
            for j in $running; do
                ((i != j)) || continue
                [[ -n ${NEW[$i]:-}${NEW[$j]:-} ]] || continue
                [[ $(seen_as "$i" "$j" "${OFFSET[$i]:-0 0}") == UP ]] || pending+=" node$i does not see node$j UP;"
            done
        done
        [[ -n $pending ]] || return 0
        if (($(date +%s) - t0 >= TIMEOUT)); then
            why="not ready within ${TIMEOUT}s (CLUSTER_START_TIMEOUT):$pending"
            why=${why%;}
            break
        fi
        sleep 1
    done
    echo "$PROG: start failed: $why" >&2
    for i in "${!NEW[@]}"; do node_log_tail "$i"; done
    local -a pids=()
    for i in "${!NEW[@]}"; do
        select_node "$i"
        if pid=$(our_pid); then pids+=("$pid"); fi
    done
    echo "Stopping the nodes this command started: ${!NEW[*]}" >&2
    stop_pids 10 "${pids[@]}"
    for i in "${!NEW[@]}"; do select_node "$i"; rm -f "$PIDFILE"; done
    exit 1
}

# Note every running node's current log size, and the nodes still starting (they count as new).
note_offsets() {
    local i
    for i in $(running_nodes); do
        select_node "$i"
        OFFSET[$i]=$(log_mark)
        if ! cql_answers "$HOST" "$PORT"; then
            NEW[$i]=1
            OFFSET[$i]=$(cat "$OFFSET_FILE" 2>/dev/null || echo 0 0)
        fi
    done
}

start_nodes() { # node numbers to start (those not running); the rest must be running or stopped
    local i t0 version
    for i in "$@"; do check_ports "$i"; done
    ensure_jars
    version=$(installed_version)
    mkdir -p "$CDIR"
    [[ -f $COUNT_FILE ]] || echo "$N" >"$COUNT_FILE"
    t0=$(date +%s)
    note_offsets
    if ((${#NEW[@]})); then echo "Waiting for node(s) still starting: ${!NEW[*]}"; fi
    for i in "$@"; do
        launch "$i"
        NEW[$i]=1
        OFFSET[$i]=$(<"$OFFSET_FILE")
        if [[ ${CLUSTER_SEQUENTIAL:-0} == 1 ]]; then wait_ready "$t0"; fi
    done
    wait_ready "$t0"
    RESULT="Cassandra $version, $(($(date +%s) - t0)) s"
}

lock() {
    mkdir -p "$WORKDIR"
    # Serialise commands that start or stop nodes; fd 9 is closed for the daemons.
    exec 9>"$WORKDIR/.cluster-$PORT.lock"
    flock 9
}

need_java() {
    command -v "$JAVA_BIN" >/dev/null ||
        die 2 "java not found (JAVA_BIN=$JAVA_BIN): install Java 17 (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_BIN"
}

cmd_start() {
    need_java
    lock
    local i
    local -a todo=()
    for ((i = 1; i <= N; i++)); do
        select_node "$i"
        if ! our_pid >/dev/null; then
            rm -f "$PIDFILE" # stale: the recorded process is gone or is not ours
            todo+=("$i")
        fi
    done
    if ((${#todo[@]} == 0)); then
        note_offsets
        if ((${#NEW[@]} == 0)); then
            echo "Reusing the cluster already running on 127.0.0.1-$N:$PORT (all $N nodes ours and answering CQL)"
            return 0
        fi
    fi
    start_nodes "${todo[@]}"
    echo "Cluster $CLUSTER_NAME ready: $N nodes on 127.0.0.1-$N:$PORT (storage port $STORAGE_PORT, datacenter $DC, $NUM_TOKENS tokens each; $RESULT)"
}

cmd_start_node() {
    need_java
    local i
    i=$(node_arg "${1:-}")
    lock
    [[ -f $COUNT_FILE ]] || die 2 "no cluster on port $PORT yet ($CDIR): run \`$0 start\` first"
    select_node "$i"
    if our_pid >/dev/null && cql_answers "$HOST" "$PORT"; then
        echo "node$i is already running on $HOST:$PORT (pid $(our_pid))"
        return 0
    fi
    if our_pid >/dev/null; then
        note_offsets # it is still starting: wait for it
        start_nodes
    else
        rm -f "$PIDFILE"
        start_nodes "$i"
    fi
    select_node "$i"
    echo "node$i ready on $HOST:$PORT and UP for the other running nodes ($RESULT)"
}

cmd_stop() {
    local wipe=0 i pid
    local -a pids=() names=()
    case ${1:-} in
        --wipe) wipe=1 ;;
        '') ;;
        *) die 2 "usage: $0 stop [--wipe]" ;;
    esac
    lock
    for ((i = 1; i <= N; i++)); do
        select_node "$i"
        if pid=$(our_pid); then
            pids+=("$pid")
            names+=("node$i (pid $pid)")
        fi
    done
    if ((${#pids[@]})) && ((wipe)); then
        # The data is deleted next, so nothing is worth a drain: SIGKILL, in about a second.
        echo "Killing ${names[*]} (--wipe: no drain)"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        stop_pids 60 "${pids[@]}"
        echo "Stopped"
    elif ((${#pids[@]})); then
        echo "Stopping ${names[*]}"
        stop_pids 60 "${pids[@]}"
        echo "Stopped"
    else
        echo "No node started by this script is running for port $PORT ($CDIR); nothing to stop"
    fi
    for ((i = 1; i <= N; i++)); do select_node "$i"; rm -f "$PIDFILE"; done
    if ((wipe)); then
        local d
        for d in "$CDIR"/node*; do
            if [[ -d $d ]]; then rm -rf "$d"/{data,commitlog,saved_caches,hints,cdc_raw}; fi
        done
        rm -f "$COUNT_FILE"
        echo "Wiped data of $CDIR"
    fi
}

cmd_stop_node() {
    local i pid
    i=$(node_arg "${1:-}")
    lock
    select_node "$i"
    if pid=$(our_pid); then
        echo "Stopping node$i on $HOST:$PORT (pid $pid)"
        stop_pid "$pid" 60
        rm -f "$PIDFILE"
        echo "Stopped"
    else
        rm -f "$PIDFILE"
        echo "node$i is not running (no live pid of ours in $NODE); nothing to stop"
    fi
}

cmd_kill() {
    local i pid n
    i=$(node_arg "${1:-}")
    select_node "$i"
    if pid=$(our_pid); then
        kill -KILL "$pid"
        for ((n = 0; n < 40; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        # The pid file stays: status reports the node as killed, start-node restarts it.
        echo "Killed node$i on $HOST:$PORT (pid $pid, SIGKILL)"
    else
        echo "node$i is not running (no live pid of ours in $NODE); nothing to kill"
    fi
}

cmd_status() {
    local i j pid up=0 line state seen
    echo "cluster $CLUSTER_NAME: $N nodes, CQL port $PORT, storage port $STORAGE_PORT, datacenter $DC ($CDIR)"
    for ((i = 1; i <= N; i++)); do
        select_node "$i"
        line="node$i $HOST:$PORT"
        if pid=$(our_pid); then
            if cql_answers "$HOST" "$PORT"; then
                up=$((up + 1))
                seen=
                for ((j = 1; j <= N; j++)); do
                    ((i != j)) || continue
                    state=$(seen_as "$i" "$j")
                    seen+=" node$j ${state:-not seen},"
                done
                select_node "$i"
                line+=" up (pid $pid)"
                ((N == 1)) || line+="; its gossip says:${seen%,}"
            else
                line+=" starting (pid $pid, no CQL answer yet)"
            fi
        elif cql_answers "$HOST" "$PORT"; then
            up=$((up + 1))
            line+=" answers CQL, but was not started by this script (no live pid in $NODE)"
        elif [[ -f $PIDFILE ]]; then
            line+=" down: pid $(<"$PIDFILE") is gone (killed or crashed)"
        elif [[ -d $NODE/data ]]; then
            line+=" stopped"
        else
            line+=" not created"
        fi
        echo "$line"
    done
    if ((up == N)); then
        echo "running: all $N nodes answer CQL"
        return 0
    fi
    echo "not running: $up of $N nodes answer CQL"
    return 3
}

cmd_logs() {
    local i
    i=$(node_arg "${1:-}")
    select_node "$i"
    [[ -f $LOG ]] || die 1 "no log for node$i at $LOG"
    if [[ ${2:-} == -f ]]; then exec tail -n 50 -F "$LOG"; fi
    tail -n 50 "$LOG"
}

case ${1:-} in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    start-node) cmd_start_node "${2:-}" ;;
    stop-node) cmd_stop_node "${2:-}" ;;
    kill) cmd_kill "${2:-}" ;;
    logs) cmd_logs "${2:-}" "${3:-}" ;;
    *) die 2 "$USAGE" ;;
esac
