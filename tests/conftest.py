"""One real Cassandra node for the whole session; a fresh keyspace for each test.

A test that needs a node says so by the fixtures it uses: every test whose fixtures reach
`node` is marked `node` here, so that `pytest -m "not node"` runs the offline tests alone,
with no Java. A fixture that starts a node of its own depends on `node` too.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import quote
from cassio_migration.job import ConnectionSpec
from tests.astra import AstraLocal
from tests.helpers import PORT, SCRIPT, LocalCluster, Result, port_open, run_script, script_env
from tests.old_packages import OldPackages

CLUSTER_PORT = 9046  # the test cluster's CQL port on 127.0.0.1-3 (storage port 7004)
# The Astra-like databases' ports (CQL, storage, proxy, metadata service): one node on 127.0.0.1,
# three on 127.0.0.4-6 (scripts/astra-local.sh's defaults are 9160, 7160, 29042, 29080).
ASTRA_PORTS = (9162, 7162, 29142, 29180)
ASTRA_CLUSTER_PORTS = (9163, 7163, 29143, 29181)
ASTRA_FIXTURES = ("astra", "astra_cluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "local_cluster" in fixtures:
            item.add_marker(pytest.mark.cluster)
        astra = any(f in fixtures for f in ASTRA_FIXTURES)
        if astra:
            item.add_marker(pytest.mark.astra)
        if "node" in fixtures or "local_cluster" in fixtures or astra:
            item.add_marker(pytest.mark.node)


def node_answers() -> bool:
    env = {**os.environ, "CASSANDRA_PORT": str(PORT)}
    return subprocess.run([str(SCRIPT), "status"], capture_output=True, env=env).returncode == 0


@pytest.fixture(scope="session")
def node() -> Iterator[ConnectionSpec]:
    """The session's node: reused if one answers, else started here and stopped at the end."""
    started = False
    env = {**os.environ, "CASSANDRA_PORT": str(PORT)}
    if not node_answers():
        subprocess.run([str(SCRIPT), "start"], check=True, env=env)
        started = True
    yield ConnectionSpec(port=PORT)
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, env=env)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One three-node cluster for the session's cluster tests; each test leaves every node up."""
    busy = [
        f"{h}:{p}" for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3") for p in (CLUSTER_PORT, 7004) if port_open(p, h)
    ]
    if busy:
        pytest.fail(f"{', '.join(busy)} already in use: the cluster tests need them for a cluster of their own")
    # c1: half the JVM's start-up CPU; the cluster tests copy small tables. No CASSANDRA_FAST_UNSAFE:
    # the tests kill nodes, and a node that never syncs its commit log loses its writes when killed.
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), CLUSTER_PORT, CLUSTER_JIT="c1")
    try:
        cluster.must("start")
        yield cluster
    finally:
        stopped = cluster.run("stop", "--wipe", timeout=200)
    assert stopped.returncode == 0 and "Wiped" in stopped.stdout, stopped.stdout + stopped.stderr


_astra_single: list[AstraLocal] = []  # the session's one-node Astra-like database while it runs


@pytest.fixture(scope="session")
def astra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AstraLocal]:
    """One Astra-like database (one node) for the session's astra tests; a limit of 20 tables (Astra's is
    50: the same guardrail, a smaller scene to set)."""
    stack = AstraLocal(tmp_path_factory.mktemp("astra"), nodes=1, host=1, ports=ASTRA_PORTS, ASTRA_LOCAL_TABLES="20")
    _astra_single.append(stack)
    with stack.running():
        yield stack


@pytest.fixture(scope="session")
def astra_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AstraLocal]:
    """The three-node Astra-like database; the one-node one is stopped first (one stack at a time)."""
    for single in _astra_single:
        single.stop()
    stack = AstraLocal(tmp_path_factory.mktemp("astra-cluster"), nodes=3, host=4, ports=ASTRA_CLUSTER_PORTS)
    with stack.running():
        yield stack


@pytest.fixture(scope="session")
def session(node: ConnectionSpec) -> Iterator[Session]:
    s = open_session(node)
    yield s
    close_session(s)


@pytest.fixture
def keyspace(session: Session) -> Iterator[str]:
    """A keyspace of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    session.execute(
        f"CREATE KEYSPACE {quote(name)} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    yield name
    session.execute(f"DROP KEYSPACE IF EXISTS {quote(name)}", timeout=120)


@pytest.fixture
def bundle(tmp_path: Path, keyspace: str) -> Callable[..., Result]:
    """Run the bundle's scripts as a user would: `python create.py ...` with settings in the environment."""

    def run(script: str, *args: str, timeout: float = 600, **env: str) -> Result:
        return run_script(script, script_env(keyspace, tmp_path, **env), tmp_path, *args, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def old_packages(tmp_path_factory: pytest.TempPathFactory) -> OldPackages:
    """cassio 0.0.x and llama_index 0.7/0.8's node schema, each installed once a session (from PyPI)."""
    return OldPackages(tmp_path_factory.mktemp("old-packages"))
