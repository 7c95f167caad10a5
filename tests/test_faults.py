"""Node faults on a real node: the node stops in the middle of a copy, stays down, or rows are 1 MB.

All run on a node of this module's own (scripts/cassandra.sh on port 9043, with its own
CASSANDRA_WORKDIR under pytest's tmp dir), stopped with --wipe at the end: the shared node
on 9042 is never touched.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified
from cassio_migration.job import ConnectionSpec
from tests.helpers import (
    OwnNode,
    one_error_line,
    own_node,
    range_rows,
    report_of,
    run_script,
    script_env,
    start_script,
    wait_for_ranges,
)

pytestmark = pytest.mark.slow

FAULT_PORT = 9043


def ranges_done(spec: ConnectionSpec, keyspace: str) -> tuple[int, int]:
    """(done, planned) ranges of the job's running or last pass."""
    s = open_session(spec)
    try:
        rows = range_rows(s, keyspace)
    finally:
        close_session(s)
    return sum(1 for r in rows if r.status == "done"), len(rows)


def wait_for_progress(spec: ConnectionSpec, keyspace: str, proc: subprocess.Popen[str], at_least: int) -> int:
    s = open_session(spec)
    try:
        return wait_for_ranges(s, keyspace, proc, at_least, timeout=90)
    finally:
        close_session(s)


@pytest.fixture(scope="module")
def fault_node(node: ConnectionSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNode]:
    yield from own_node(FAULT_PORT, tmp_path_factory.mktemp("node-faults"))


@pytest.fixture
def fault_keyspace(fault_node: OwnNode) -> str:
    return f"f_{uuid.uuid4().hex[:12]}"


def test_node_stopped_mid_copy_and_restarted_the_run_finishes_clean(
    fault_node: OwnNode, fault_keyspace: str, tmp_path: Path
) -> None:
    env = script_env(fault_keyspace, tmp_path, port=fault_node.port, MIGRATION_RETRY_SECONDS="90")
    assert run_script("create.py", env, tmp_path, "--rows", "3000", "--quiet").code == 0

    report = tmp_path / "m.json"
    proc = start_script("migrate.py", env, tmp_path, "--quiet", "--rate-limit", "500", "--report", str(report))
    try:
        done_before = wait_for_progress(fault_node.spec(), fault_keyspace, proc, 1)
        fault_node.stop()  # not --wipe: the data stays
        # The copy was cut in the middle: the process is still waiting for the node.
        assert proc.poll() is None, proc.communicate()
        time.sleep(5)
        fault_node.start()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    data = json.loads(report.read_text())
    assert (data["status"], data["rows_written"], data["rows_rejected"], data["resumed"]) == ("done", 3000, 0, False)
    done_after, planned = ranges_done(fault_node.spec(), fault_keyspace)
    assert done_before < planned == done_after == data["ranges"]

    v = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (v["status"], v["matching"], v["missing"], v["different"], v["extra"]) == ("clean", 3000, 0, 0, 0)


def test_node_stays_down_exit_3_with_state_saved_then_resume(
    fault_node: OwnNode, fault_keyspace: str, tmp_path: Path
) -> None:
    env = script_env(fault_keyspace, tmp_path, port=fault_node.port, MIGRATION_RETRY_SECONDS="5")
    assert run_script("create.py", env, tmp_path, "--rows", "3000", "--quiet").code == 0

    proc = start_script("migrate.py", env, tmp_path, "--quiet", "--rate-limit", "500")
    try:
        done_before = wait_for_progress(fault_node.spec(), fault_keyspace, proc, random.randint(1, 3))
        fault_node.stop()
        down_at = time.monotonic()
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            fault_node.start()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, out + err
    assert time.monotonic() - down_at < 60  # MIGRATION_RETRY_SECONDS + back-off, well within 60 s
    line = one_error_line(err)
    assert "resume" in line and "state" in line, line
    assert not (tmp_path / "last-error.txt").exists(), (tmp_path / "last-error.txt").read_text()
    done, planned = ranges_done(fault_node.spec(), fault_keyspace)
    assert done_before <= done < planned

    report = tmp_path / "r.json"
    resumed = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(report))
    assert resumed.code == 0, resumed.out + resumed.err
    data = json.loads(report.read_text())
    assert data["resumed"] is True and data["pass_number"] == 1, data
    assert data["ranges_skipped"] >= done_before and data["ranges_copied"] + data["ranges_skipped"] == data["ranges"]
    assert ranges_done(fault_node.spec(), fault_keyspace) == (planned, planned)

    v = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (v["status"], v["matching"], v["missing"], v["different"]) == ("clean", 3000, 0, 0)


def test_one_megabyte_documents_are_migrated_and_verified(
    fault_node: OwnNode, fault_keyspace: str, tmp_path: Path
) -> None:
    # On this module's node rather than the shared one: dropping 30 MB from a busy shared
    # node took over a minute, and this node is wiped at the end anyway.
    env = script_env(fault_keyspace, tmp_path, port=fault_node.port)
    created = run_script("create.py", env, tmp_path, "--rows", "0", "--quiet")
    assert created.code == 0, created.out + created.err
    session = open_session(fault_node.spec())
    try:
        insert = session.prepare(
            f"INSERT INTO {qualified(fault_keyspace, 'legacy')} (document_id, embedding_vector, document,"
            " metadata_blob) VALUES (?, ?, ?, ?)"
        )
        rng = random.Random(7)
        documents: dict[uuid.UUID, str] = {}
        for i in range(30):
            key = uuid.UUID(int=rng.getrandbits(128), version=4)
            # 1,000,000 characters, not all ASCII (about 1.1 MB of UTF-8), different in every row.
            doc = (f"row {i} é€ " + "".join(rng.choices("abcdefghij klmnop\n", k=1_000_000)))[:1_000_000]
            documents[key] = doc
            vector = [rng.uniform(-1, 1) for _ in range(16)]
            session.execute(insert, (key, vector, doc, json.dumps({"i": i, "big": True})), timeout=60)

        # The default page size (200 rows): the whole table, ~33 MB, comes in one page.
        data = report_of("migrate.py", env, tmp_path, report="m.json")
        assert (data["rows_read"], data["rows_written"], data["rows_rejected"]) == (30, 30, 0)

        v = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
        assert (v["status"], v["matching"], v["missing"], v["different"]) == ("clean", 30, 0, 0)

        # Read back: every body is the whole document, character for character.
        rows = session.execute(f"SELECT row_id, body_blob FROM {qualified(fault_keyspace, 'migrated')}", timeout=60)
        got = {r.row_id: r.body_blob for r in rows}
    finally:
        close_session(session)
    assert got.keys() == documents.keys()
    assert all(got[k] == documents[k] for k in documents)
    assert {len(b) for b in got.values()} == {1_000_000}
