"""Range tasks on worker processes: --workers N (a local Dask cluster) and --scheduler ADDRESS.

On the real node: copy and verify on 2 worker processes, a worker killed with -9 in the
middle of a run, Ctrl-C to the whole process group, an unreachable scheduler, and a real
`dask scheduler` + `dask worker` pair.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cassandra.cluster import Session

from cassio_migration.errors import CredentialsError
from cassio_migration.job import ConnectionSpec, Secret
from cassio_migration.legacy import LegacyTable
from cassio_migration.rejects import replay_rows
from tests.helpers import ROOT, range_rows, start_migration

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).parent / "dask"


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def running_worker_pid(
    session: Session, keyspace: str, proc: subprocess.Popen[str], done_at_least: int, number: int = 1
) -> int:
    """The pid of a worker process (a child of migrate.py) that has a range of pass `number` in flight."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        rows = range_rows(session, keyspace, number)
        if sum(r.status == "done" for r in rows) >= done_at_least:
            for r in rows:
                if r.status == "running" and r.worker:
                    pid = int(r.worker.split(":")[1])
                    if pid != proc.pid and parent_of(pid) == proc.pid:
                        return pid
        time.sleep(0.05)
    raise AssertionError(f"no worker with a range in flight was seen (exit {proc.poll()})")


def lines_of(text: str, prefix: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


def test_two_workers_migrate_and_verify_clean(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "2000", "--dirty", "--quiet").code == 0
    result = bundle("migrate.py", "--workers", "2", "--splits", "32", "--report", str(tmp_path / "r.json"))
    assert result.code == 1, result.err  # the dirty rows: done with rejects
    assert "local Dask cluster: 2 worker processes, 4 threads" in result.out, result.out
    data = json.loads((tmp_path / "r.json").read_text())
    context = json.dumps(data, indent=1) + result.out + result.err
    assert data["status"] == "done_with_rejects" and data["ranges_copied"] == data["ranges"] >= 32, context
    assert data["rows_read"] == data["rows_written"] + data["rows_rejected"] == 2024, context  # 24 dirty rows
    # The closing report: one line per worker process, and the same figures in the JSON.
    workers = data["workers"]
    assert len(workers) == 2, context
    assert all(w["rows"] > 0 and w["ranges"] > 0 and w["rows_per_s"] > 0 for w in workers.values()), context
    assert sum(w["rows"] for w in workers.values()) == data["rows_read"], context
    assert len(lines_of(result.out, "worker ")) == 2, context
    # The workers' rejects files are merged into the run's rejects.jsonl, which --replay reads.
    rejects = Path(data["rejects_file"])
    assert rejects.name == "rejects.jsonl" and not list(rejects.parent.glob("rejects-*.jsonl"))
    source = LegacyTable("ks", "legacy", "uuid", 16)
    assert len(list(replay_rows(str(rejects), source))) == data["rows_rejected"] == 9, context
    # State: every range done once, the rows counted once.
    rows = range_rows(session, keyspace, 1)
    assert all(r.status == "done" for r in rows) and sum(r.rows_read for r in rows) == 2024, rows

    verified = bundle(
        "migrate.py", "--verify", "--workers", "2", "--splits", "32", "--report", str(tmp_path / "v.json")
    )
    assert verified.code == 0, verified.out + verified.err
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["status"] == "clean" and report["source_rows"] == 2024 and report["matching"] == 2015, report


def test_worker_killed_mid_range_then_ctrl_c(session: Session, keyspace: str, tmp_path: Path, bundle) -> None:
    assert bundle("create.py", "--rows", "3000", "--quiet").code == 0
    # A rate limit keeps the run long enough to kill a worker with ranges in flight.
    proc = start_migration(
        keyspace,
        tmp_path,
        "--workers",
        "2",
        "--splits",
        "48",
        "--rate-limit",
        "500",
        "--report",
        "r.json",
        new_session=True,
    )
    os.kill(running_worker_pid(session, keyspace, proc, 3), signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert not err.strip(), err  # no worker noise
    data = json.loads((tmp_path / "r.json").read_text())
    # Dask ran the lost ranges again elsewhere; each range counts once in the summary and the state.
    assert data["ranges_copied"] == data["ranges"] and data["rows_read"] == data["rows_written"] == 3000
    rows = range_rows(session, keyspace, 1)
    assert all(r.status == "done" for r in rows) and sum(r.rows_read for r in rows) == 3000
    verified = bundle("migrate.py", "--verify", "--workers", "2", "--quiet")
    assert verified.code == 0, verified.out + verified.err

    # Ctrl-C, to the whole process group as a terminal sends it, in a second pass (--full), slow
    # enough that it comes long before the pass's last range even on a loaded machine.
    proc = start_migration(
        keyspace, tmp_path, "--workers", "2", "--full", "--splits", "48", "--rate-limit", "150", new_session=True
    )
    worker = running_worker_pid(session, keyspace, proc, 2, number=2)
    os.killpg(proc.pid, signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 20
    assert err.strip().splitlines() == ["error: interrupted: the state is saved; run the same command again to resume"]
    assert not alive(worker)
    done = sum(r.status == "done" for r in range_rows(session, keyspace, 2))
    assert done > 0
    resumed = bundle("migrate.py", "--workers", "2", "--full", "--quiet", "--report", str(tmp_path / "r2.json"))
    assert resumed.code == 0, resumed.err
    data = json.loads((tmp_path / "r2.json").read_text())
    assert data["resumed"] is True and data["pass_number"] == 2
    assert data["ranges_skipped"] >= done and data["ranges_copied"] > 0
    assert sum(r.rows_read for r in range_rows(session, keyspace, 2)) == 3000
    assert bundle("migrate.py", "--verify", "--quiet").code == 0


def test_existing_dask_cluster_and_an_unreachable_one(bundle, keyspace: str, tmp_path: Path) -> None:
    """A scheduler that does not answer; then `dask scheduler` and `dask worker` as the README runs them."""
    assert bundle("create.py", "--rows", "1000", "--quiet").code == 0
    started = time.monotonic()
    result = bundle("migrate.py", "--scheduler", "tcp://127.0.0.1:1")
    took = time.monotonic() - started
    assert result.code == 3, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:1"), lines
    assert took < 20, took
    both = bundle("migrate.py", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert both.code == 2 and "exclude each other" in both.err

    address_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler = subprocess.Popen(
        [
            str(DASK),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(address_file),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        worker = subprocess.Popen(
            [str(DASK), "worker", address, "--nthreads", "2", "--no-dashboard", "--host", "127.0.0.1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The worker's environment has no CASSANDRA_PASSWORD: the task does not bring it.
        secret = "pw-Secr3t-workers"
        refused = bundle(
            "migrate.py", "--scheduler", address, CASSANDRA_USERNAME="cassandra", CASSANDRA_PASSWORD=secret
        )
        assert refused.code == 2, refused.err
        assert "CASSANDRA_PASSWORD is not set in this worker's environment" in refused.err
        assert len(refused.err.strip().splitlines()) == 1 and secret not in refused.out + refused.err
        result = bundle("migrate.py", "--scheduler", address, "--report", str(tmp_path / "r.json"))
        assert result.code == 0, result.err
        assert f"Dask cluster at {address}: 1 worker process, 2 threads" in result.out
        data = json.loads((tmp_path / "r.json").read_text())
        assert data["rows_written"] == 1000
        # One worker process: the child of `dask worker`'s nanny.
        assert [parent_of(int(name.rsplit(":", 1)[1])) for name in data["workers"]] == [worker.pid]
        verified = bundle("migrate.py", "--verify", "--scheduler", address, "--quiet")
        assert verified.code == 0, verified.out + verified.err
    finally:
        for p in (worker, scheduler):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_a_task_carries_no_secret_and_a_worker_takes_it_from_its_environment() -> None:
    spec = ConnectionSpec(username="u", password=Secret("pw-Secr3t"), astra_token=None)
    sent = spec.without_secrets()
    assert sent.password is not None and sent.password.is_elsewhere and sent.astra_token is None
    assert "pw-Secr3t" not in repr(sent.__dict__) + repr(pickle.dumps(sent))
    assert pickle.loads(pickle.dumps(sent)) == sent and pickle.loads(pickle.dumps(spec)) == spec
    assert sent.with_secrets_from_environment({"CASSANDRA_PASSWORD": "other"}).password == Secret("other")
    with pytest.raises(CredentialsError, match="CASSANDRA_PASSWORD is not set in this worker's environment"):
        sent.with_secrets_from_environment({})
    astra = ConnectionSpec(astra_token=Secret("AstraCS:tok"), astra_bundle_path="b.zip").without_secrets()
    assert astra.is_astra and astra.astra_token is not None and astra.astra_token.is_elsewhere
    filled = astra.with_secrets_from_environment({"ASTRA_DB_APPLICATION_TOKEN": "AstraCS:x"})
    assert filled.astra_token == Secret("AstraCS:x")
