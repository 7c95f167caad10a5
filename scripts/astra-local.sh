#!/usr/bin/env bash
# An Astra-like database on this machine, from real parts, all on loopback (docs/astra.md):
# Cassandra 5.0 nodes (the jars of scripts/cassandra.sh) with mutual client TLS, password auth
# and Astra's limits as guardrails; HAProxy routing TLS by SNI (= the node's host id); an HTTPS
# metadata service that wants the client certificate; a secure-connect bundle for the driver.
#
#   scripts/astra-local.sh start [--nodes N]   start (or reuse) the stack; N nodes (default 1)
#   scripts/astra-local.sh stop [--wipe]       stop every part; --wipe: delete data and certs
#   scripts/astra-local.sh status              one line a part; exit 0 only if every part answers
#   scripts/astra-local.sh kill I              kill -9 node I (a node lost mid-run)
#   scripts/astra-local.sh env                 the settings that reach it (the token is in a file)
#
# Environment (all optional):
#   ASTRA_LOCAL_WORKDIR    certs, nodes, bundle, token (default: <repo>/.cassandra/astra-local)
#   ASTRA_LOCAL_HOST       the last byte of the first node's address 127.0.0.X (default: 1 for one
#                          node, 4 for more: nodes on 127.0.0.4-6); proxy and metadata service
#                          listen on the first node's address
#   ASTRA_LOCAL_CQL_PORT   every node's CQL port (default: 9160); storage port: ASTRA_LOCAL_STORAGE_PORT
#                          (default: 7160)
#   ASTRA_LOCAL_PROXY_PORT, ASTRA_LOCAL_METADATA_PORT   (default: 29042, 29080)
#   ASTRA_LOCAL_KEYSPACE   the one keyspace the token may use (default: default_keyspace)
#   ASTRA_LOCAL_TABLES     tables_fail_threshold (default: 50, Astra's tables per database)
#   ASTRA_LOCAL_QUOTA      requests/s per node, answered "overloaded" past it (default: none)
#   ASTRA_LOCAL_HEAP       each node's heap (default: 1G)
#   CASSANDRA_SIZE_RECORDER_INTERVAL  0 (default): no size estimates, as Astra may have none
#   JAVA_BIN, PYTHON       (default: java; the project's .venv/bin/python)
#
# Exit codes: 0 ok, 1 start failed, 2 usage or prerequisite problem, 3 (status) not all up.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cassandra-common.sh
. "$REPO_ROOT/scripts/cassandra-common.sh"
PROG=astra-local.sh
USAGE="usage: $0 start [--nodes N]|stop [--wipe]|status|kill I|env"
WORKDIR=${ASTRA_LOCAL_WORKDIR:-$REPO_ROOT/.cassandra/astra-local}
JAVA_BIN=${JAVA_BIN:-java}
MVN_BIN=${MVN_BIN:-mvn}
PYTHON=${PYTHON:-$REPO_ROOT/.venv/bin/python}
HELPER=$REPO_ROOT/scripts/astra_local.py
PORT=${ASTRA_LOCAL_CQL_PORT:-9160}
STORAGE_PORT=${ASTRA_LOCAL_STORAGE_PORT:-7160}
PROXY_PORT=${ASTRA_LOCAL_PROXY_PORT:-29042}
META_PORT=${ASTRA_LOCAL_METADATA_PORT:-29080}
KEYSPACE=${ASTRA_LOCAL_KEYSPACE:-default_keyspace}
TABLES=${ASTRA_LOCAL_TABLES:-50}
QUOTA=${ASTRA_LOCAL_QUOTA:-}
for p in "$PORT" "$STORAGE_PORT" "$PROXY_PORT" "$META_PORT"; do is_port "$p" || die 2 "$p is not a port in 1024-65535"; done
[[ $KEYSPACE =~ ^[a-z][a-z0-9_]{0,47}$ ]] || die 2 "ASTRA_LOCAL_KEYSPACE=$KEYSPACE: lower-case letters, digits and _"
[[ $TABLES =~ ^[1-9][0-9]*$ ]] || die 2 "ASTRA_LOCAL_TABLES=$TABLES is not a positive integer"
[[ -z $QUOTA || $QUOTA =~ ^[1-9][0-9]*$ ]] || die 2 "ASTRA_LOCAL_QUOTA=$QUOTA is not a positive integer"
lib_paths
COUNT_FILE=$WORKDIR/nodes
CERTS=$WORKDIR/certs
BUNDLE=$WORKDIR/secure-connect-astra-local.zip

nodes_count() { if [[ -f $COUNT_FILE ]]; then cat "$COUNT_FILE"; else echo "${WANT_NODES:-1}"; fi; }
first_host() {
    local n=${1:-$(nodes_count)}
    echo "${ASTRA_LOCAL_HOST:-$( ((n == 1)) && echo 1 || echo 4)}"
}
select_node() { # node number
    I=$1
    HOST=127.0.0.$(($(first_host) + I - 1))
    node_paths "$WORKDIR/node$I"
}
ADDR() { echo "127.0.0.$(first_host)"; }

# A CA, and from it: the nodes' certificate (any name: the driver checks the chain only), the
# metadata service's and the client's (the bundle's cert and key). Made once per workdir.
make_certs() {
    [[ -f $CERTS/ca.crt ]] && return 0
    command -v openssl >/dev/null || die 2 "openssl not found: apt-get install openssl"
    mkdir -p "$CERTS"
    chmod 700 "$CERTS"
    (
        cd "$CERTS"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=astra-local CA" 2>/dev/null
        for name in node metadata client; do
            openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=astra-local $name" 2>/dev/null
            openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days 3650 2>/dev/null
            rm -f "$name.csr"
        done
        # Cassandra's PEM keystore: the private key and its certificate chain in one file.
        cat node.key node.crt >node.pem
        chmod 600 ./*.key node.pem
    )
}

node_yaml() {
    cat <<EOF
client_encryption_options:
  enabled: true
  optional: false
  require_client_auth: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: $CERTS/node.pem
  truststore: $CERTS/ca.crt
# Astra DB's documented limits, as Cassandra 5.0 guardrails (superusers skip them; the token's role is none).
tables_fail_threshold: $TABLES
secondary_indexes_per_table_fail_threshold: 10
write_consistency_levels_disallowed: [ANY, ONE, LOCAL_ONE]
materialized_views_enabled: false
user_defined_functions_enabled: false
user_timestamps_enabled: true
EOF
    if [[ -n $QUOTA ]]; then
        printf '%s\n' "native_transport_rate_limiting_enabled: true" \
            "native_transport_max_requests_per_second: $QUOTA" "native_transport_throw_on_overload: true"
    fi
    # A fresh cluster's nodes take random tokens and start at once (as scripts/cluster.sh does).
    (($(nodes_count) == 1)) || echo "auto_bootstrap: false"
}

start_nodes() {
    local n i
    n=$(nodes_count)
    ensure_jars
    CLUSTER_NAME=astra-local-$PORT SNITCH=SimpleSnitch NUM_TOKENS=${CASSANDRA_NUM_TOKENS:-16}
    AUTH=password TLS_KEYSTORE='' TLS_KEYSTORE_PASSWORD='' EXTRA_YAML=$(node_yaml)
    HEAP=${ASTRA_LOCAL_HEAP:-1G} FAST_UNSAFE=0 SUPERUSER_SETUP_DELAY_MS=''
    export CASSANDRA_SIZE_RECORDER_INTERVAL=${CASSANDRA_SIZE_RECORDER_INTERVAL:-0}
    SEEDS=$(ADDR):$STORAGE_PORT
    for ((i = 1; i <= n; i++)); do
        select_node "$i"
        if our_pid >/dev/null; then continue; fi
        port_open "$HOST" "$PORT" && die 2 "$HOST:$PORT is in use; set ASTRA_LOCAL_CQL_PORT or ASTRA_LOCAL_HOST"
        port_open "$HOST" "$STORAGE_PORT" && die 2 "$HOST:$STORAGE_PORT is in use; set ASTRA_LOCAL_STORAGE_PORT"
        write_config
        local -a args
        mapfile -t args < <(jvm_args)
        args+=(-XX:TieredStopAtLevel=1) # half the start-up CPU: the stack is for tests
        # The roles on every node from the first boot on: a node lost takes no login with it.
        args+=("-Dcassandra.system_auth.default_rf=$((n < 3 ? n : 3))")
        launch_node "${args[@]}"
        echo "Starting node$I on $HOST:$PORT (pid $LAUNCHED_PID, dir $NODE)"
    done
}

# HAProxy in TCP mode: the TLS ClientHello's SNI (a node's host id) picks the node; an unknown
# host id has no backend, so the connection is refused.
start_proxy() {
    command -v haproxy >/dev/null || die 2 "haproxy not found: apt-get install haproxy (make test installs it)"
    local cfg=$WORKDIR/haproxy.cfg i id
    if [[ -f $WORKDIR/haproxy.pid ]] && kill -0 "$(<"$WORKDIR/haproxy.pid")" 2>/dev/null; then return 0; fi
    {
        printf 'global\n  maxconn 4096\n  pidfile %s\n' "$WORKDIR/haproxy.pid"
        printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
        printf 'frontend sni\n  bind %s:%s\n  tcp-request inspect-delay 5s\n' "$(ADDR)" "$PROXY_PORT"
        printf '  tcp-request content accept if { req.ssl_hello_type 1 }\n'
        i=0
        while read -r id; do
            i=$((i + 1))
            printf '  use_backend node%s if { req.ssl_sni -i %s }\n' "$i" "$id"
        done <"$WORKDIR/host_ids"
        i=0
        while read -r id; do
            i=$((i + 1))
            select_node "$i"
            printf 'backend node%s\n  server node%s %s:%s\n' "$i" "$i" "$HOST" "$PORT"
        done <"$WORKDIR/host_ids"
    } >"$cfg"
    haproxy -q -D -f "$cfg" || die 1 "haproxy did not start (config: $cfg)"
}

start_metadata() {
    local pidfile=$WORKDIR/metadata.pid
    if [[ -f $pidfile ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then return 0; fi
    (exec setsid nohup "$PYTHON" "$HELPER" serve "$WORKDIR" >"$WORKDIR/metadata.log" 2>&1 </dev/null 9>&-) &
    echo $! >"$pidfile"
    local i
    for ((i = 0; i < 50; i++)); do port_open "$(ADDR)" "$META_PORT" && return 0; sleep 0.2; done
    die 1 "the metadata service did not start: $(tail -n 5 "$WORKDIR/metadata.log")"
}

write_stack() { # what the Python helper needs, as JSON
    local n i hosts=
    n=$(nodes_count)
    for ((i = 1; i <= n; i++)); do select_node "$i"; hosts+="\"$HOST\","; done
    cat >"$WORKDIR/stack.json" <<EOF
{"hosts": [${hosts%,}], "cql_port": $PORT, "keyspace": "$KEYSPACE", "proxy": "$(ADDR):$PROXY_PORT",
 "metadata_host": "$(ADDR)", "metadata_port": $META_PORT, "bundle": "$BUNDLE"}
EOF
}

cmd_start() {
    WANT_NODES=1
    case "${1:-}" in
        --nodes) WANT_NODES=${2:-}; [[ $WANT_NODES =~ ^[1-9]$ ]] || die 2 "--nodes takes 1-9" ;;
        '') ;;
        *) die 2 "$USAGE" ;;
    esac
    command -v "$JAVA_BIN" >/dev/null || die 2 "java not found (JAVA_BIN=$JAVA_BIN)"
    [[ -x $PYTHON ]] || die 2 "no Python at $PYTHON: run make venv, or set PYTHON"
    mkdir -p "$WORKDIR"
    exec 9>"$WORKDIR/.lock"
    flock 9
    if [[ -f $COUNT_FILE ]] && (($(<"$COUNT_FILE") != WANT_NODES)); then
        die 2 "the stack in $WORKDIR has $(<"$COUNT_FILE") node(s); run \`$0 stop --wipe\` first to change it"
    fi
    [[ -e $WORKDIR/lib || ! -f $REPO_ROOT/.cassandra/lib/.complete ]] ||
        ln -s "$(cd "$REPO_ROOT/.cassandra/lib" && pwd -P)" "$WORKDIR/lib"
    echo "$WANT_NODES" >"$COUNT_FILE"
    local t0
    t0=$(date +%s)
    make_certs
    write_stack
    start_nodes
    # Roles, the keyspace, the host ids (the proxy's routes): the helper waits for the nodes.
    "$PYTHON" "$HELPER" setup "$WORKDIR" || die 1 "setting up the nodes failed (node logs: $WORKDIR/node*/logs)"
    start_proxy
    start_metadata
    "$PYTHON" "$HELPER" bundle "$WORKDIR" || die 1 "the bundle does not connect through the proxy"
    echo "Astra-like database ready ($(nodes_count) node(s), $(($(date +%s) - t0)) s): bundle $BUNDLE," \
        "keyspace $KEYSPACE, token in $WORKDIR/token"
}

cmd_stop() {
    local wipe=0 i n pid f
    case "${1:-}" in --wipe) wipe=1 ;; '') ;; *) die 2 "$USAGE" ;; esac
    n=$(nodes_count)
    for f in haproxy metadata; do
        if [[ -f $WORKDIR/$f.pid ]]; then
            pid=$(<"$WORKDIR/$f.pid")
            kill "$pid" 2>/dev/null && echo "Stopped $f (pid $pid)"
            rm -f "$WORKDIR/$f.pid"
        fi
    done
    local -a pids=()
    for ((i = 1; i <= n; i++)); do
        select_node "$i"
        if pid=$(our_pid); then pids+=("$pid"); fi
    done
    for pid in "${pids[@]}"; do
        if ((wipe)); then kill -KILL "$pid" 2>/dev/null || true; else stop_pid "$pid" 60; fi
        echo "Stopped node pid $pid"
    done
    for ((i = 0; i < 40; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.5
    done
    for ((i = 1; i <= n; i++)); do select_node "$i"; rm -f "$PIDFILE"; done
    if ((wipe)); then
        rm -rf "$WORKDIR"/node* "$CERTS" "$WORKDIR"/{token,admin,host_ids,stack.json,nodes,haproxy.cfg} "$BUNDLE"
        echo "Wiped $WORKDIR"
    fi
}

cmd_status() {
    local n i ok=0 pid
    n=$(nodes_count)
    for ((i = 1; i <= n; i++)); do
        select_node "$i"
        if pid=$(our_pid) && port_open "$HOST" "$PORT"; then
            echo "node$i: up on $HOST:$PORT (pid $pid)"
        else
            echo "node$i: down"
            ok=3
        fi
    done
    if port_open "$(ADDR)" "$PROXY_PORT"; then echo "proxy: up on $(ADDR):$PROXY_PORT"; else echo "proxy: down"; ok=3; fi
    if port_open "$(ADDR)" "$META_PORT"; then echo "metadata service: up on $(ADDR):$META_PORT"; else echo "metadata service: down"; ok=3; fi
    if [[ -f $BUNDLE ]]; then echo "bundle: $BUNDLE"; else echo "bundle: none"; ok=3; fi
    return $ok
}

cmd_kill() {
    local i=${1:-} pid
    [[ $i =~ ^[1-9]$ ]] && ((i <= $(nodes_count))) || die 2 "$USAGE"
    select_node "$i"
    pid=$(our_pid) || die 1 "node$i is not running"
    kill -KILL "$pid"
    echo "Killed node$i (pid $pid)"
}

cmd_env() {
    printf 'ASTRA_DB_SECURE_BUNDLE_PATH=%s\nASTRA_DB_KEYSPACE=%s\n' "$BUNDLE" "$KEYSPACE"
    printf '# ASTRA_DB_APPLICATION_TOKEN=$(cat %s)\n' "$WORKDIR/token"
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    kill) cmd_kill "${2:-}" ;;
    env) cmd_env ;;
    *) die 2 "$USAGE" ;;
esac
