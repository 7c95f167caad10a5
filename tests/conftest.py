"""One real Cassandra node for the whole session; a fresh keyspace for each test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cassandra.cluster import Session

from cassio_migration.connect import ConnectionSpec, close_session, open_session
from cassio_migration.cql import quote

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("CASSANDRA_PORT", "9042"))
SCRIPT = ROOT / "scripts" / "cassandra.sh"


def node_answers() -> bool:
    return (
        subprocess.run(
            [str(SCRIPT), "status"], capture_output=True, env={**os.environ, "CASSANDRA_PORT": str(PORT)}
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def node() -> Iterator[ConnectionSpec]:
    """The session's node: reused if one answers, else started here and stopped at the end."""
    started = False
    if not node_answers():
        subprocess.run([str(SCRIPT), "start"], check=True, env={**os.environ, "CASSANDRA_PORT": str(PORT)})
        started = True
    yield ConnectionSpec(port=PORT)
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, env={**os.environ, "CASSANDRA_PORT": str(PORT)})


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


@dataclass
class Result:
    code: int
    out: str
    err: str


def script_env(keyspace: str, tmp_path: Path, port: int = PORT, **extra: str) -> dict[str, str]:
    """The settings a test gives the bundle's scripts, in their environment (no .env is read)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "CASSANDRA_PORT": str(port),
        "CASSANDRA_KEYSPACE": keyspace,
        "FAKE_DATA_OLD_TABLE": "legacy",
        "OLD_TABLE": "legacy",
        "TARGET_TABLE": "migrated",
        "VECTOR_DIMENSION": "16",
        "MIGRATION_RUNS_DIR": str(tmp_path / "runs"),
        "MIGRATION_RETRY_SECONDS": "20",
        # One machine, one clock: no skew margin needed (production default: 300 s).
        "MIGRATION_CLOCK_SKEW_SECONDS": "0",
        **extra,
    }


@pytest.fixture
def bundle(tmp_path: Path, keyspace: str):  # type: ignore[no-untyped-def]
    """Run the bundle's scripts as a user would: `python create.py ...` with settings in the environment."""

    def run(script: str, *args: str, timeout: float = 600, **env: str) -> Result:
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=script_env(keyspace, tmp_path, **env),
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
