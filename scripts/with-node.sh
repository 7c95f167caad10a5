#!/usr/bin/env bash
# Run a command with a local Cassandra node: reuse one that answers, else start one and
# stop it afterwards (only the one started here).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=0
if ! "$here/cassandra.sh" status >/dev/null 2>&1; then
    "$here/cassandra.sh" start
    started=1
fi
status=0
"$@" || status=$?
if [[ $started == 1 ]]; then
    "$here/cassandra.sh" stop
fi
exit "$status"
