"""The migration on a real three-node cluster, replication factor 3: what only a cluster shows.

A node killed in the middle of a copy, two nodes down (no quorum), --verify with a node
down, a target on the cluster with the source on the single node, plan sizing from every
node's estimates, range scans sent to a replica. The cluster is the session's
(tests/conftest.py `local_cluster`); each test starts with every node up and leaves them so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified, quote
from cassio_migration.plan import TokenRange, check_coverage, estimated_rows
from cassio_migration.scan import Router
from tests.conftest import CLUSTER_PORT
from tests.helpers import (
    PORT,
    LocalCluster,
    one_error_line,
    range_rows,
    read_report,
    report_of,
    run_script,
    script_env,
    start_script,
    wait_for_ranges,
)

ROWS = 3000


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    local_cluster.all_up()
    return local_cluster


@pytest.fixture
def cluster_session(cluster: LocalCluster) -> Iterator[Session]:
    s = open_session(cluster.spec())
    yield s
    close_session(s)


@pytest.fixture
def rf3(cluster_session: Session) -> Iterator[str]:
    """A keyspace name on the cluster; create.py makes it with 3 replicas. Dropped afterwards."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    yield name
    cluster_session.execute(f"DROP KEYSPACE IF EXISTS {quote(name)}", timeout=120)


def cluster_env(keyspace: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return script_env(keyspace, tmp_path, port=CLUSTER_PORT, **extra)


def seed_rf3(env: dict[str, str], tmp_path: Path, rows: int = ROWS) -> None:
    created = run_script("create.py", env, tmp_path, "--rows", str(rows), "--replication-factor", "3", "--quiet")
    assert created.code == 0, created.out + created.err


def test_a_node_killed_mid_copy_changes_nothing_and_verify_runs_with_it_down(
    cluster: LocalCluster, cluster_session: Session, rf3: str, tmp_path: Path
) -> None:
    env = cluster_env(rf3, tmp_path, MIGRATION_RETRY_SECONDS="60")
    seed_rf3(env, tmp_path)
    replication = cluster_session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (rf3,)
    ).one()
    assert dict(replication.replication) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        "datacenter1": "3",
    }

    tokens = {t.value for t in cluster_session.cluster.metadata.token_map.ring}  # the ring, every node up
    proc = start_script("migrate.py", env, tmp_path, "--quiet", "--rate-limit", "400", "--report", "m.json")
    try:
        wait_for_ranges(cluster_session, rf3, proc, 2)
        cluster.must("kill", "3")  # SIGKILL: a crash, in the middle of the copy
        at_kill = range_rows(cluster_session, rf3)
        # In the middle indeed: the copy still runs, with ranges left to copy.
        assert proc.poll() is None, "the copy ended before the node was killed"
        assert sum(r.status == "done" for r in at_kill) < len(at_kill)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err  # no write ran out of retries
    data = read_report(tmp_path / "m.json")
    assert (data["status"], data["rows_written"], data["rows_rejected"]) == ("done", ROWS, 0), data

    # The stored plan tiles the ring of 48 tokens; every node's token is a range boundary.
    rows = range_rows(cluster_session, rf3)
    check_coverage([TokenRange(r.range_start, r.range_end) for r in rows])
    assert len(tokens) == 48 and tokens <= {r.range_end for r in rows}
    assert all(r.status == "done" for r in rows) and sum(r.rows_read for r in rows) == ROWS

    # --verify with node3 still down: its range scans go to the replicas that are up.
    verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (verified["status"], verified["matching"], verified["missing"], verified["different"]) == (
        "clean",
        ROWS,
        0,
        0,
    )
    # node3 back (it missed the writes of the copy's second half: hints and quorum reads cover them)
    cluster.must("start-node", "3")
    again = report_of("migrate.py", env, tmp_path, "--verify", report="v2.json")
    assert (again["status"], again["matching"], again["missing"], again["different"]) == ("clean", ROWS, 0, 0)


def test_two_nodes_down_stop_the_copy_with_exit_3_then_the_same_command_resumes(
    cluster: LocalCluster, cluster_session: Session, rf3: str, tmp_path: Path
) -> None:
    env = cluster_env(rf3, tmp_path, MIGRATION_RETRY_SECONDS="10")
    seed_rf3(env, tmp_path)
    started = time.monotonic()
    proc = start_script("migrate.py", env, tmp_path, "--quiet", "--rate-limit", "150")
    try:
        done_before = wait_for_ranges(cluster_session, rf3, proc, 2)
        # Past one commit log sync period (10 s): a node killed sooner may lose the job's state row,
        # as it may lose any write it acknowledged since its last sync (commitlog_sync: periodic).
        time.sleep(max(0.0, 12 - (time.monotonic() - started)))
        assert proc.poll() is None, "the copy ended before the nodes could be killed"
        cluster.must("kill", "2")
        cluster.must("kill", "3")
        down_at = time.monotonic()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    took = time.monotonic() - down_at
    assert proc.returncode == 3, out + err
    line = one_error_line(err)
    assert "still failed after 10 s of retries (MIGRATION_RETRY_SECONDS)" in line, line
    assert "the state is saved; run the same command again to resume" in line, line
    assert took < 120, took  # the retry budget, the back-off, the driver's request timeout

    cluster.must("start")  # both back
    rows = range_rows(cluster_session, rf3)
    done = sum(r.status == "done" for r in rows)
    assert done_before <= done < len(rows)
    resumed = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(tmp_path / "r.json"))
    assert resumed.code == 0, resumed.out + resumed.err
    data = read_report(tmp_path / "r.json")
    assert data["resumed"] is True and data["ranges_skipped"] >= done_before
    assert data["ranges_copied"] + data["ranges_skipped"] == data["ranges"]
    verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (verified["status"], verified["matching"], verified["missing"]) == ("clean", ROWS, 0)


def test_a_target_on_the_cluster_with_the_source_on_a_single_node(
    cluster: LocalCluster, cluster_session: Session, rf3: str, session: Session, keyspace: str, tmp_path: Path
) -> None:
    cluster_session.execute(
        f"CREATE KEYSPACE {quote(rf3)} WITH replication = {{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}}",
        timeout=120,
    )
    env = script_env(
        keyspace,
        tmp_path,
        TARGET_CASSANDRA_CONTACT_POINTS="127.0.0.2",  # any node of the cluster will do
        TARGET_CASSANDRA_PORT=str(CLUSTER_PORT),
        TARGET_KEYSPACE=rf3,
    )
    assert run_script("create.py", env, tmp_path, "--rows", "500", "--dirty", "--quiet").code == 0
    first = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(tmp_path / "m.json"))
    assert first.code == 1, first.out + first.err  # done, with the dirty rows rejected
    data = read_report(tmp_path / "m.json")
    assert (data["rows_read"], data["rows_written"], data["rows_rejected"]) == (524, 515, 9)
    assert data["source"] == f"{keyspace}.legacy on 127.0.0.1:{PORT}"
    assert data["target"] == f"{rf3}.migrated on 127.0.0.2:{CLUSTER_PORT}"
    count = cluster_session.execute(f"SELECT COUNT(*) FROM {qualified(rf3, 'migrated')}", timeout=60).one()[0]
    assert count == 515
    verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (verified["status"], verified["matching"], verified["rejected"]) == ("clean", 515, 9)
    again = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(tmp_path / "again.json"))
    # Pass 2: nothing changed since pass 1; the copied rows are skipped, the dirty ones rejected again.
    assert again.code == 1, again.out + again.err
    data = read_report(tmp_path / "again.json")
    assert (data["pass_number"], data["rows_skipped"], data["rows_written"], data["rows_rejected"]) == (2, 515, 0, 9)


def flushed_estimate(session: Session, keyspace: str, table: str, rows: int) -> int:
    """Flush the table every second, and wait for the nodes' size estimates to see it."""
    session.execute(f"ALTER TABLE {qualified(keyspace, table)} WITH memtable_flush_period_in_ms = 1000", timeout=60)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = estimated_rows(session, keyspace, table)
        if found >= rows * 0.7:
            return found
        time.sleep(2)
    return estimated_rows(session, keyspace, table)


def planned_rows_per_range(env: dict[str, str], tmp_path: Path, name: str) -> float:
    dry = run_script(
        "migrate.py", env, tmp_path, "--dry-run", "--quiet", "--parallel-ranges", "1", "--report", str(tmp_path / name)
    )
    assert dry.code == 0, dry.out + dry.err
    data = read_report(tmp_path / name)
    assert data["ranges_copied"] == data["ranges"]
    return float(data["rows_read"]) / data["ranges"]


def test_plan_sizing_counts_the_rows_of_every_node_on_one_node_and_on_three(
    cluster: LocalCluster, cluster_session: Session, rf3: str, session: Session, keyspace: str, tmp_path: Path
) -> None:
    """MIGRATION_ROWS_PER_RANGE=100: about 100 rows a range on 1 node and on 3, not 300 on 3."""
    single = script_env(keyspace, tmp_path, MIGRATION_ROWS_PER_RANGE="100")
    assert run_script("create.py", single, tmp_path, "--rows", str(ROWS), "--quiet").code == 0
    three = cluster_env(rf3, tmp_path, MIGRATION_ROWS_PER_RANGE="100")
    seed_rf3(three, tmp_path)
    one_node = flushed_estimate(session, keyspace, "legacy", ROWS)
    three_nodes = flushed_estimate(cluster_session, rf3, "legacy", ROWS)
    assert 0.7 * ROWS <= one_node <= 1.5 * ROWS, one_node
    assert 0.7 * ROWS <= three_nodes <= 1.5 * ROWS, three_nodes  # each node alone knows about a third
    assert 60 <= planned_rows_per_range(single, tmp_path, "one.json") <= 150
    assert 60 <= planned_rows_per_range(three, tmp_path, "three.json") <= 150

    # Each range's scan is sent to a replica of it: with 3 replicas of everything, all three nodes.
    router = Router(cluster_session, rf3)
    r = TokenRange(-(2**63), -(2**62))
    assert sorted(h.address for h in router.replicas(r)) == cluster.hosts
    assert not Router(cluster_session, rf3, enabled=False).replicas(r)
