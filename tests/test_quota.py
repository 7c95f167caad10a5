"""A database with a request quota: the adaptive write window backs off instead of piling on.

A node of this module's own (port 9051) runs with Cassandra's native transport rate limit
(`native_transport_max_requests_per_second`) and `native_transport_throw_on_overload`: past the
quota it answers "overloaded", as a hosted database with a quota does. It does so only to
protocol v5 clients (v4 ones it holds back), so the runs here speak v5. The rows go one per
request (`MIGRATION_BATCH_ROWS=1`): the quota counts requests, and batches of 5 rows ask too
little of it for it to refuse anything.

A fixed window keeps 128 writes in flight whatever the node says, and runs into overload errors;
the adaptive window (the default) halves on them and keeps pace with what the quota lets through.
Measured here (1,500 rows, quota 50/s): fixed 2,419 write retries, 42.7 rows/s; adaptive 701
retries, 43.2 rows/s, window 1 to 17, 326 back-offs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cassio_migration.connect import close_session, open_session
from cassio_migration.job import ConnectionSpec
from tests.helpers import OwnNode, own_node, report_of, run_script, script_env

pytestmark = pytest.mark.slow

QUOTA_PORT = 9051
QUOTA = 50  # requests a second
ROWS = 1500


@pytest.fixture(scope="module")
def quota_node(node: ConnectionSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNode]:
    yield from own_node(
        QUOTA_PORT,
        tmp_path_factory.mktemp("node-quota"),
        CASSANDRA_MAX_REQUESTS_PER_SECOND=str(QUOTA),
        CASSANDRA_THROW_ON_OVERLOAD="1",
    )


def test_under_a_quota_the_adaptive_window_backs_off_and_keeps_pace(quota_node: OwnNode, tmp_path: Path) -> None:
    env = script_env(
        "quota",
        tmp_path,
        port=QUOTA_PORT,
        MIGRATION_PROTOCOL_VERSION="5",
        MIGRATION_BATCH_ROWS="1",
        MIGRATION_REQUEST_TIMEOUT="1",
        MIGRATION_RETRY_SECONDS="15",
    )
    # create.py meets the quota too: its writes are refused past it and retried.
    created = run_script("create.py", env, tmp_path, "--rows", str(ROWS), "--concurrency", "16", "--quiet")
    assert created.code == 0, created.out + created.err

    fixed = report_of(
        "migrate.py", {**env, "MIGRATION_WINDOW": "fixed", "TARGET_TABLE": "fixed"}, tmp_path, report="f.json"
    )
    assert (fixed["status"], fixed["rows_written"]) == ("done", ROWS)
    assert fixed["window"] == {"backoffs": 0, "low": 128, "high": 128}
    assert fixed["write_retries"] >= ROWS // 10, fixed  # the fixed window runs into the quota

    adaptive = report_of("migrate.py", env, tmp_path, report="a.json")  # the default window: exit 0
    assert (adaptive["status"], adaptive["rows_written"], adaptive["rows_rejected"]) == ("done", ROWS, 0)
    window = adaptive["window"]
    assert window["backoffs"] >= 1 and 1 <= window["low"] < window["high"] <= 128, window
    assert adaptive["write_retries"] < fixed["write_retries"] / 2, (adaptive, fixed)
    # A small window loses nothing against the quota: the node's pace, not the window's, sets the rate.
    assert adaptive["rows_per_s"] >= 0.85 * fixed["rows_per_s"], (adaptive, fixed)
    print(
        f"quota {QUOTA}/s: fixed window {fixed['write_retries']} write retries, {fixed['rows_per_s']} rows/s;"
        f" adaptive {adaptive['write_retries']} retries, {adaptive['rows_per_s']} rows/s, window {window}"
    )
    verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (verified["status"], verified["matching"], verified["missing"]) == ("clean", ROWS, 0)


# Another client that asks ~4x the quota for `seconds`, then says how many of its requests the node refused.
HAMMER = """
import sys, time
from cassandra.cluster import Cluster
from cassandra.cluster import NoHostAvailable
for _ in range(120):  # the node may still be over its quota from the test before: wait for room
    cluster = Cluster(["127.0.0.1"], port=int(sys.argv[1]), protocol_version=5)
    try:
        session = cluster.connect()
        break
    except NoHostAvailable:
        cluster.shutdown()
        time.sleep(0.5)
print("hammering", flush=True)
refused = []
until = time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    session.execute_async("SELECT release_version FROM system.local").add_errback(refused.append)
    time.sleep(0.002)
time.sleep(1)
print(len(refused), flush=True)
cluster.shutdown()
"""


def test_a_connection_refused_as_overloaded_waits_for_room(
    quota_node: OwnNode, caplog: pytest.LogCaptureFixture
) -> None:
    seconds = 10
    hammer = subprocess.Popen(
        [sys.executable, "-c", HAMMER, str(QUOTA_PORT), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert hammer.stdout is not None and hammer.stdout.readline() == "hammering\n"
    time.sleep(2)  # past the burst the node's limiter lets through
    started = time.monotonic()
    # Over protocol v5 the node refuses a new connection's queries past the quota ("overloaded").
    session = open_session(ConnectionSpec(port=QUOTA_PORT, protocol_version=5), raw=True)
    waited = time.monotonic() - started
    print(f"connected after {waited:.1f} s")
    try:
        assert session.execute("SELECT release_version FROM system.local").one()
    finally:
        close_session(session)
    refused = int(hammer.communicate(timeout=60)[0])
    assert refused > 0  # the node was over its quota meanwhile
    # The node refused the connection, which waited for room instead of failing.
    assert any("refused to connect as overloaded" in r.getMessage() for r in caplog.records), caplog.records
