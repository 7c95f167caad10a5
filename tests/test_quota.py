"""A database with a request quota: the adaptive write window backs off instead of piling on.

A node of this module's own (port 9051) runs with Cassandra's native transport rate limit
(`native_transport_max_requests_per_second`, as a hosted database has a quota): past it the
node holds requests back. A fixed window keeps 128 writes in flight whatever the node does;
the adaptive window (the default) shrinks to what the quota lets through and keeps pace.
The rows go one per request (`MIGRATION_BATCH_ROWS=1`): the quota counts requests, and batches
of 5 rows (the default) ask too little of it (~30 requests/s) for it to hold anything back (in
CI the adaptive window then grew from 16 to 128 with no reason to back off).
Measured here: on a quiet machine the fixed window made 50-52 rows/s with no retries and the
adaptive one 58-61 rows/s with its window down to 6-16; on a busy machine (load 40) the held
writes of the fixed window timed out (1,093 retries, 24 rows/s) and the adaptive one's did not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cassio_migration.job import ConnectionSpec
from tests.helpers import OwnNode, own_node, report_of, run_script, script_env

pytestmark = pytest.mark.slow

QUOTA_PORT = 9051
QUOTA = 50  # requests a second
ROWS = 1500


@pytest.fixture(scope="module")
def quota_node(node: ConnectionSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNode]:
    yield from own_node(QUOTA_PORT, tmp_path_factory.mktemp("node-quota"), CASSANDRA_MAX_REQUESTS_PER_SECOND=str(QUOTA))


def test_under_a_quota_the_adaptive_window_backs_off_and_keeps_pace(quota_node: OwnNode, tmp_path: Path) -> None:
    seeding = script_env("quota", tmp_path, port=QUOTA_PORT)
    seeded_at = time.monotonic()
    created = run_script("create.py", seeding, tmp_path, "--rows", str(ROWS), "--concurrency", "16", "--quiet")
    assert created.code == 0, created.out + created.err
    # The node's limiter lets a burst through and holds back the requests after it until the
    # quota catches up: a fast seeding leaves ~ROWS/QUOTA s owed, past the driver's 15 s connect timeout.
    time.sleep(max(0.0, seeded_at + ROWS / QUOTA + 1 - time.monotonic()))
    env = {**seeding, "MIGRATION_REQUEST_TIMEOUT": "1", "MIGRATION_RETRY_SECONDS": "15", "MIGRATION_BATCH_ROWS": "1"}

    fixed = report_of(
        "migrate.py", {**env, "MIGRATION_WINDOW": "fixed", "TARGET_TABLE": "fixed"}, tmp_path, report="f.json"
    )
    assert (fixed["status"], fixed["rows_written"]) == ("done", ROWS)
    assert fixed["window"] == {"backoffs": 0, "low": 128, "high": 128}

    adaptive = report_of("migrate.py", env, tmp_path, report="a.json")  # the default window: exit 0
    assert (adaptive["status"], adaptive["rows_written"], adaptive["rows_rejected"]) == ("done", ROWS, 0)
    window = adaptive["window"]
    assert window["backoffs"] >= 1 and 1 <= window["low"] < window["high"] <= 128, window
    assert adaptive["write_retries"] <= fixed["write_retries"], (adaptive, fixed)
    # A small window loses nothing against the quota: the node's pace, not the window's, sets the rate.
    assert adaptive["rows_per_s"] >= 0.9 * fixed["rows_per_s"], (adaptive, fixed)
    print(
        f"quota {QUOTA}/s: fixed window {fixed['write_retries']} write retries, {fixed['rows_per_s']} rows/s;"
        f" adaptive {adaptive['write_retries']} retries, {adaptive['rows_per_s']} rows/s, window {window}"
    )
    verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (verified["status"], verified["matching"], verified["missing"]) == ("clean", ROWS, 0)
