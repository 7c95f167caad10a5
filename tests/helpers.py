"""What the tests share: running the bundle's scripts, nodes of a test's own, reading the state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import certifi
import pytest
from cassandra import InvalidRequest, ReadFailure
from cassandra.cluster import NoHostAvailable, Session

from cassio_migration.cql import qualified
from cassio_migration.job import ConnectionSpec

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("CASSANDRA_PORT", "9042"))  # the session's shared node
SCRIPT = ROOT / "scripts" / "cassandra.sh"


class Result(NamedTuple):
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
        **extra,
    }


def astra_bundle(path: Path) -> Path:
    """A file in the form of an Astra DB secure-connect bundle (a zip); offline tests use its path only."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    return path


def ca_file(path: Path) -> Path:
    """A PEM file of CA certificates that a TLS context loads (certifi's); offline tests use its path only."""
    shutil.copyfile(certifi.where(), path)
    return path


def run_script(script: str, env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> Result:
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_script(
    script: str, env: dict[str, str], cwd: Path, *args: str, new_session: bool = False
) -> subprocess.Popen[str]:
    """A script running in the background; `new_session`: in a process group of its own, as a terminal runs it."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
        # Ctrl-C's default, as in a terminal: a shell's background job (`cmd &`) ignores SIGINT, and
        # its children inherit that, which would leave the interrupt tests nothing to interrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def start_migration(
    keyspace: str, tmp_path: Path, *args: str, new_session: bool = False, **extra: str
) -> subprocess.Popen[str]:
    """migrate.py --quiet on the shared node, in the background."""
    env = script_env(keyspace, tmp_path, **extra)
    return start_script("migrate.py", env, tmp_path, "--quiet", *args, new_session=new_session)


def read_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def report_of(script: str, env: dict[str, str], cwd: Path, *args: str, report: str) -> dict[str, Any]:
    """Run a script that must succeed (exit 0) with --quiet --report; its report."""
    result = run_script(script, env, cwd, *args, "--quiet", "--report", str(cwd / report))
    assert result.code == 0, result.out + result.err
    return read_report(cwd / report)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def range_rows(session: Session, keyspace: str, number: int | None = None, job: str = "migrated") -> list[Any]:
    """The state's range rows of the job (of pass `number`, or of every pass); [] before the state exists."""
    where, params = ("job = %s AND pass_number = %s", (job, number)) if number else ("job = %s", (job,))
    try:
        return list(
            session.execute(
                f"SELECT pass_number, range_start, range_end, status, worker, rows_read FROM"
                f" {qualified(keyspace, 'cassio_migration_ranges')} WHERE {where} ALLOW FILTERING",
                params,
            )
        )
    except (InvalidRequest, NoHostAvailable, ReadFailure) as exc:
        # Not created yet, or being created this very moment by the run ("Unknown CF": the node knows the
        # table's name but not yet its data; INCOMPATIBLE_SCHEMA: a replica does not know it yet), nothing else.
        transient = ("does not exist", "unconfigured table", "Unknown CF", "INCOMPATIBLE_SCHEMA")
        if not any(s in str(exc) for s in transient):
            raise
        return []


def wait_for_ranges(
    session: Session, keyspace: str, proc: subprocess.Popen[str], at_least: int, timeout: float = 120
) -> int:
    """Wait until the running migration has `at_least` ranges done; how many it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(r.status == "done" for r in range_rows(session, keyspace))
        if done >= at_least:
            return done
        time.sleep(0.05)
    out, err = proc.communicate() if proc.poll() is not None else ("", "")
    raise AssertionError(f"the migration did not get far enough (exit {proc.poll()}): {out}{err}")


def schema(
    session: Session, keyspace: str, table: str
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str]]]:
    """A table's columns and indexes as system_schema lists them, the table's name left out of index names."""
    columns = sorted(
        (r.column_name, r.kind, r.type, r.clustering_order)
        for r in session.execute(
            "SELECT column_name, kind, type, clustering_order FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    )
    indexes = sorted(
        (r.index_name.replace(table, "{table}"), r.kind, json.dumps(dict(r.options), sort_keys=True))
        for r in session.execute(
            "SELECT index_name, kind, options FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    )
    return columns, indexes


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


class OwnNode:
    """A Cassandra node of a test's own: scripts/cassandra.sh with its own port and workdir.

    The jars are shared with the repository's cache (a symlink), so no Maven run is needed.
    Only this node is ever stopped: the script stops the pid recorded in this workdir.
    """

    def __init__(self, port: int, workdir: Path, **env: str) -> None:
        self.port = port
        self.workdir = workdir
        self.extra = env
        workdir.mkdir(parents=True, exist_ok=True)
        cached = Path(os.environ.get("CASSANDRA_WORKDIR", ROOT / ".cassandra")) / "lib"
        if (cached / ".complete").is_file() and not (workdir / "lib").exists():
            (workdir / "lib").symlink_to(cached.resolve(), target_is_directory=True)

    @property
    def env(self) -> dict[str, str]:
        # None of the caller's CASSANDRA_* settings (auth, TLS, storage port) leaks into this node.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CASSANDRA_")}
        return {
            **inherited,
            "CASSANDRA_PORT": str(self.port),
            "CASSANDRA_WORKDIR": str(self.workdir),
            "CASSANDRA_FAST_UNSAFE": "1",
            **self.extra,
        }

    def script(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> None:
        result = self.script("start")
        assert result.returncode == 0, f"node on {self.port} did not start: {result.stdout}{result.stderr}"
        # Never run a test against a node that was already there (another engineer's).
        assert "Reusing" not in result.stdout or "ours" in result.stdout, result.stdout

    def stop(self, *, wipe: bool = False) -> None:
        result = self.script("stop", *(["--wipe"] if wipe else []))
        assert result.returncode == 0, result.stdout + result.stderr

    def spec(self) -> ConnectionSpec:
        return ConnectionSpec(port=self.port)


def own_node(port: int, workdir: Path, **env: str) -> Iterator[OwnNode]:
    """Start a node of our own on `port`; stop it with --wipe however the tests end."""
    if port_open(port):
        pytest.fail(f"port {port} is already in use: this test needs it for a node of its own")
    node = OwnNode(port, workdir, **env)
    try:
        node.start()
        yield node
    finally:
        node.stop(wipe=True)


CLUSTER_SCRIPT = ROOT / "scripts" / "cluster.sh"


class LocalCluster:
    """scripts/cluster.sh with a port and workdir of its own: three real nodes on 127.0.0.1-3."""

    def __init__(self, workdir: Path, port: int, nodes: int = 3, **env: str) -> None:
        self.workdir = workdir
        self.port = port
        self.nodes = nodes
        self.hosts = [f"127.0.0.{i}" for i in range(1, nodes + 1)]
        workdir.mkdir(parents=True, exist_ok=True)
        cached = Path(os.environ.get("CASSANDRA_WORKDIR", ROOT / ".cassandra")) / "lib"
        if (cached / ".complete").is_file() and not (workdir / "lib").exists():
            (workdir / "lib").symlink_to(cached.resolve(), target_is_directory=True)
        # None of the caller's CASSANDRA_* or CLUSTER_* settings leaks into this cluster.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CASSANDRA_", "CLUSTER_"))}
        self.env = {
            **inherited,
            "CASSANDRA_WORKDIR": str(workdir),
            "CLUSTER_PORT": str(port),
            "CLUSTER_NODES": str(nodes),
            **env,
        }

    def run(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def must(self, *args: str, timeout: float = 400) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"cluster.sh {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def all_up(self) -> None:
        """Every node running and seeing the others (starts those that are not)."""
        if self.run("status").returncode != 0:
            self.must("start")

    def spec(self) -> ConnectionSpec:
        return ConnectionSpec(contact_points=(self.hosts[0],), port=self.port)
