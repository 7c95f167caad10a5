#!/usr/bin/env bash
# The main job on the local node: seed a legacy table, migrate it, verify the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
# The README's .env for the local demo node (a test keeps the two equal); the environment wins over it.
ENV_FILE=scripts/demo.env
rows=${DEMO_ROWS:-10000}

echo "== 1. create.py: a cassio 0.0.7 legacy table with $rows fake rows (+ dirty rows)"
# A demo starts from a clean table each time.
$PY - <<PYEOF
from cassio_migration.connect import open_session, close_session
from settings import load_settings
s = load_settings(dotenv_path="$ENV_FILE"); session = open_session(s.connection())
session.execute(f'DROP KEYSPACE IF EXISTS "{s.resolved_keyspace()}"', timeout=120)
close_session(session)
PYEOF
$PY create.py --env-file "$ENV_FILE" --rows "$rows" --dirty --ttl-fraction 0.1

echo "== 2. migrate.py (exit 1 = done with rejected rows, as expected with --dirty)"
status=0
$PY migrate.py --env-file "$ENV_FILE" || status=$?
[[ $status == 0 || $status == 1 ]] || exit "$status"

echo "== 3. migrate.py --verify"
$PY migrate.py --env-file "$ENV_FILE" --verify

echo "== 4. migrate.py again: the re-run after the cutover (copies rows written since the first pass began, less a 5-minute clock-skew margin: here, all)"
status=0
$PY migrate.py --env-file "$ENV_FILE" || status=$?
[[ $status == 0 || $status == 1 ]] || exit "$status"

echo "== 5. migrate.py --status: what the job's state tables say"
$PY migrate.py --env-file "$ENV_FILE" --status
