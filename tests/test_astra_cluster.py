"""The three-node Astra-like database (scripts/astra-local.sh start --nodes 3: every node's host id routed
by the one proxy, replication factor 3): a node lost in the middle of a copy through the bundle."""

from __future__ import annotations

from pathlib import Path

from tests.astra import AstraLocal
from tests.helpers import read_report, run_script, start_script, wait_for_ranges

ROWS = 3000


def test_a_node_lost_mid_copy_through_the_proxy_changes_nothing(astra_cluster: AstraLocal, tmp_path: Path) -> None:
    stack = astra_cluster
    env = stack.script_env(tmp_path, MIGRATION_RETRY_SECONDS="60", MIGRATION_ROWS_PER_RANGE="200")
    created = run_script("create.py", env, tmp_path, "--rows", str(ROWS))
    assert created.code == 0, created.out + created.err
    with stack.admin() as admin:  # the roles too are on every node: a node lost takes no login with it
        auth = admin.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'")
        assert auth.one().replication["replication_factor"] == "3"
    proc = start_script("migrate.py", env, tmp_path, "--quiet", "--rate-limit", "300", "--report", "m.json")
    try:
        with stack.admin() as admin:
            wait_for_ranges(admin, stack.keyspace, proc, 2)
        stack.must("kill", "3")  # SIGKILL: a crash, in the middle of the copy
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err  # LOCAL_QUORUM holds with two of three; no write ran out of retries
    data = read_report(tmp_path / "m.json")
    assert (data["status"], data["rows_written"], data["rows_rejected"]) == ("done", ROWS, 0), data

    verified = run_script("migrate.py", env, tmp_path, "--verify", "--quiet", "--report", "v.json")
    assert verified.code == 0, verified.out + verified.err
    report = read_report(tmp_path / "v.json")
    assert (report["status"], report["matching"], report["missing"]) == ("clean", ROWS, 0)
