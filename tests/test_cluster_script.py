"""Drive scripts/cluster.sh: a real 3-node Cassandra 5.0 cluster of this module's own.

The cluster is the session's (tests/conftest.py `local_cluster`: 127.0.0.1-3, CQL port 9046,
storage port 7004, its own CASSANDRA_WORKDIR under pytest's tmp dir), beside the session's node
on 9042. The tests run in file order: kill node3, stop node2, restart node2 with start-node and
node3 with start, stop all (the session's next cluster test starts it again).
The first tests need no node at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import FallthroughRetryPolicy, WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

from tests.conftest import CLUSTER_PORT
from tests.helpers import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cluster.sh"
PORT = CLUSTER_PORT
NODES = 3
HOSTS = [f"127.0.0.{i}" for i in range(1, NODES + 1)]
DC = "datacenter1"


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def base_env(workdir: Path, port: int = PORT, **extra: str) -> dict[str, str]:
    # None of the caller's CASSANDRA_* or CLUSTER_* settings leaks into this cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASSANDRA_", "CLUSTER_"))}
    env.update(CASSANDRA_WORKDIR=str(workdir), CLUSTER_PORT=str(port), CLUSTER_NODES=str(NODES), **extra)
    return env


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_lines(status_out: str) -> dict[int, str]:
    return {int(line[4]): line for line in status_out.splitlines() if line.startswith("node")}


# --- no node needed -------------------------------------------------------------------------


def test_unknown_command_and_bad_node_exit_2(tmp_path: Path) -> None:
    env = base_env(tmp_path / "wd", free_port())
    result = run("frobnicate", env=env)
    assert result.returncode == 2 and "usage" in result.stderr, result
    for bad in ("0", "4", "nodeX", ""):
        result = run("kill", bad, env=env)
        assert result.returncode == 2, (bad, result)
        assert "give a node number 1-3" in result.stderr, result.stderr


def test_status_without_cluster_exits_3(tmp_path: Path) -> None:
    result = run("status", env=base_env(tmp_path / "wd", free_port()))
    assert result.returncode == 3, result
    assert result.stdout.count("not created") == NODES, result.stdout
    assert result.stdout.splitlines()[-1].startswith("not running: 0 of 3"), result.stdout


def test_start_refuses_a_port_held_on_a_later_node(tmp_path: Path) -> None:
    """A listener on 127.0.0.2 (node2's address) stops the start before any node is launched."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        env = base_env(tmp_path / "wd", port, CLUSTER_STORAGE_PORT=str(free_port()))
        result = run("start", env=env, timeout=60)
    assert result.returncode == 2, result
    assert f"127.0.0.2:{port}" in result.stderr and "CLUSTER_PORT" in result.stderr, result.stderr
    assert "Starting node" not in result.stdout, result.stdout
    assert not (tmp_path / "wd" / "lib").exists()  # nor were jars downloaded for it


def test_start_node_before_start_exits_2(tmp_path: Path) -> None:
    result = run("start-node", "2", env=base_env(tmp_path / "wd", free_port()))
    assert result.returncode == 2, result
    assert "start" in result.stderr, result.stderr


# --- the real cluster -----------------------------------------------------------------------


@pytest.fixture
def cluster_env(local_cluster: LocalCluster) -> dict[str, str]:
    """The session's cluster (tests/conftest.py), as the environment of cluster.sh."""
    return local_cluster.env


def connect(hosts: list[str]) -> tuple[Cluster, Session]:
    """A session whose coordinators are `hosts` only; no retries, so errors surface as they are."""
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy(hosts),
        retry_policy=FallthroughRetryPolicy(),
        request_timeout=30,
    )
    cluster = Cluster(hosts, port=PORT, execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=10)
    return cluster, cluster.connect()


@pytest.fixture(scope="module")
def kv_keyspace(local_cluster: LocalCluster) -> Iterator[str]:
    """A NetworkTopologyStrategy keyspace with 3 replicas in the snitch's datacenter, and one table."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    cluster, session = connect(HOSTS)
    try:
        session.execute(
            f"CREATE KEYSPACE {name} WITH replication = {{'class': 'NetworkTopologyStrategy', '{DC}': 3}}",
            timeout=60,
        )
        session.execute(f"CREATE TABLE {name}.kv (k int PRIMARY KEY, v text)", timeout=60)
    finally:
        cluster.shutdown()
    yield name


def write_and_read(session: Session, keyspace: str, tag: str, rows: int = 20) -> None:
    insert = SimpleStatement(
        f"INSERT INTO {keyspace}.kv (k, v) VALUES (%s, %s)", consistency_level=ConsistencyLevel.LOCAL_QUORUM
    )
    select = SimpleStatement(
        f"SELECT v FROM {keyspace}.kv WHERE k = %s", consistency_level=ConsistencyLevel.LOCAL_QUORUM
    )
    for k in range(rows):
        session.execute(insert, (k, f"{tag}-{k}"))
    for k in range(rows):
        row = session.execute(select, (k,)).one()
        assert row is not None and row.v == f"{tag}-{k}"


@pytest.mark.cluster
def test_status_reports_every_node_up(local_cluster: LocalCluster, cluster_env: dict[str, str]) -> None:
    local_cluster.all_up()  # whatever the session's other cluster tests left
    result = run("status", env=cluster_env)
    assert result.returncode == 0, result
    lines = node_lines(result.stdout)
    assert sorted(lines) == [1, 2, 3], result.stdout
    for i, line in lines.items():
        assert line.startswith(f"node{i} 127.0.0.{i}:{PORT} up (pid "), line
        others = [j for j in lines if j != i]
        assert all(f"node{j} UP" in line for j in others), line
    assert result.stdout.splitlines()[-1] == "running: all 3 nodes answer CQL"


@pytest.mark.cluster
def test_one_ring_of_48_tokens_seen_from_every_node(cluster_env: dict[str, str]) -> None:
    for host in HOSTS:
        cluster, session = connect([host])
        try:
            # A node that was down when other tests changed the schema pulls it from its peers soon after.
            deadline = time.monotonic() + 60
            while True:
                local = session.execute(
                    "SELECT cluster_name, data_center, tokens, schema_version FROM system.local"
                ).one()
                peers = list(session.execute("SELECT peer, data_center, tokens, schema_version FROM system.peers_v2"))
                if {local.schema_version} == {p.schema_version for p in peers} or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            cluster.shutdown()
        assert local.cluster_name == f"local-cluster-{PORT}"
        assert sorted(str(p.peer) for p in peers) == sorted(set(HOSTS) - {host})
        assert {local.data_center} | {p.data_center for p in peers} == {DC}
        assert len(local.tokens) == 16 and all(len(p.tokens) == 16 for p in peers)
        assert len(set(local.tokens).union(*(p.tokens for p in peers))) == 48
        assert {local.schema_version} == {p.schema_version for p in peers}  # schema agreement


@pytest.mark.cluster
def test_nodes_killed_stopped_and_started_again(
    local_cluster: LocalCluster, cluster_env: dict[str, str], kv_keyspace: str
) -> None:
    """One story, in order, from every node up back to every node up: each step needs the one before."""
    local_cluster.all_up()
    one_node_killed_local_quorum_still_works(cluster_env, kv_keyspace)
    two_nodes_down_local_quorum_is_unavailable(cluster_env, kv_keyspace)
    start_node_restarts_a_stopped_node(cluster_env, kv_keyspace)
    start_restarts_the_killed_node_and_it_rejoins(cluster_env, kv_keyspace)


def one_node_killed_local_quorum_still_works(cluster_env: dict[str, str], kv_keyspace: str) -> None:
    result = run("kill", "3", env=cluster_env)
    assert result.returncode == 0 and "Killed node3" in result.stdout, result
    status = run("status", env=cluster_env)
    assert status.returncode == 3, status
    lines = node_lines(status.stdout)
    assert " down: pid " in lines[3] and "killed or crashed" in lines[3], status.stdout
    assert " up (pid " in lines[1] and " up (pid " in lines[2], status.stdout
    assert status.stdout.splitlines()[-1] == "not running: 2 of 3 nodes answer CQL"

    cluster, session = connect(HOSTS[:2])
    try:
        write_and_read(session, kv_keyspace, "one-down")
    finally:
        cluster.shutdown()


def two_nodes_down_local_quorum_is_unavailable(cluster_env: dict[str, str], kv_keyspace: str) -> None:
    result = run("stop-node", "2", env=cluster_env)
    assert result.returncode == 0 and "Stopped" in result.stdout, result
    status = run("status", env=cluster_env)
    assert status.returncode == 3, status
    assert node_lines(status.stdout)[2].endswith(" stopped"), status.stdout

    cluster, session = connect(HOSTS[:1])
    insert = SimpleStatement(
        f"INSERT INTO {kv_keyspace}.kv (k, v) VALUES (1, 'x')", consistency_level=ConsistencyLevel.LOCAL_QUORUM
    )
    try:
        # node2 said goodbye; node1 convicts the killed node3 on its own, ~10 s after the kill.
        # Until then a write waits for node3 and times out instead.
        deadline = time.monotonic() + 60
        while True:
            try:
                session.execute(insert)
            except Unavailable as e:
                assert (e.consistency, e.required_replicas, e.alive_replicas) == (ConsistencyLevel.LOCAL_QUORUM, 2, 1)
                break
            except WriteTimeout:
                pass
            assert time.monotonic() < deadline, "no Unavailable within 60 s with 2 of 3 replicas down"
            time.sleep(1)
        select = SimpleStatement(
            f"SELECT v FROM {kv_keyspace}.kv WHERE k = 1", consistency_level=ConsistencyLevel.LOCAL_QUORUM
        )
        with pytest.raises(Unavailable):
            session.execute(select)
    finally:
        cluster.shutdown()


def start_node_restarts_a_stopped_node(cluster_env: dict[str, str], kv_keyspace: str) -> None:
    result = run("start-node", "2", env=cluster_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node2 ready on 127.0.0.2" in result.stdout, result.stdout
    status = run("status", env=cluster_env)
    assert status.returncode == 3, status  # node3 is still down
    lines = node_lines(status.stdout)
    assert " up (pid " in lines[2] and "node1 UP" in lines[2], status.stdout
    assert "node2 UP" in lines[1], status.stdout

    cluster, session = connect(HOSTS[:2])
    try:
        write_and_read(session, kv_keyspace, "node2-back")
    finally:
        cluster.shutdown()


def start_restarts_the_killed_node_and_it_rejoins(cluster_env: dict[str, str], kv_keyspace: str) -> None:
    result = run("start", env=cluster_env)
    assert result.returncode == 0, result.stdout + result.stderr
    started = [line for line in result.stdout.splitlines() if line.startswith("Starting node")]
    assert len(started) == 1 and started[0].startswith("Starting node3 on 127.0.0.3"), result.stdout
    status = run("status", env=cluster_env)
    assert status.returncode == 0, status
    for i, line in node_lines(status.stdout).items():
        assert all(f"node{j} UP" in line for j in range(1, NODES + 1) if j != i), line

    # node3 coordinates again; the rows written while it was down are read at LOCAL_QUORUM.
    cluster, session = connect(HOSTS[2:])
    try:
        peers = {str(r.peer) for r in session.execute("SELECT peer FROM system.peers_v2")}
        assert peers == set(HOSTS[:2])
        select = SimpleStatement(
            f"SELECT v FROM {kv_keyspace}.kv WHERE k = 7", consistency_level=ConsistencyLevel.LOCAL_QUORUM
        )
        assert session.execute(select).one().v == "node2-back-7"
        write_and_read(session, kv_keyspace, "all-up-again")
    finally:
        cluster.shutdown()


@pytest.mark.cluster
def test_stop_stops_every_node_and_start_brings_them_back(
    local_cluster: LocalCluster, cluster_env: dict[str, str]
) -> None:
    local_cluster.all_up()
    pids = [
        int((Path(cluster_env["CASSANDRA_WORKDIR"]) / f"cluster-{PORT}" / f"node{i}" / "cassandra.pid").read_text())
        for i in (1, 2, 3)
    ]
    result = run("stop", env=cluster_env, timeout=200)
    assert result.returncode == 0, result
    assert "Stopped" in result.stdout and "Wiped" not in result.stdout, result.stdout
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    status = run("status", env=cluster_env)
    assert status.returncode == 3 and status.stdout.count(" stopped") == NODES, status.stdout
    again = run("stop", env=cluster_env)
    assert again.returncode == 0 and "nothing to stop" in again.stdout, again
    # The session's cluster stays for the other cluster tests (its fixture wipes it at the end).
    local_cluster.must("start")
    assert run("status", env=cluster_env).returncode == 0
