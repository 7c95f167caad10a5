"""Source and target on two clusters: the session's node and a second node of this module's own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified, quote
from cassio_migration.job import ConnectionSpec
from cassio_migration.seed import dirty_row_count
from tests.helpers import PORT, OwnNode, own_node, report_of, run_script, script_env

pytestmark = pytest.mark.slow

TARGET_PORT = 9049


@pytest.fixture(scope="module")
def target_node(node: ConnectionSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNode]:
    yield from own_node(TARGET_PORT, tmp_path_factory.mktemp("node-target"))


def tables(node_session, keyspace: str) -> set[str]:  # type: ignore[no-untyped-def]
    rows = node_session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return {r.table_name for r in rows}


def test_migrate_into_another_cluster(target_node: OwnNode, session, keyspace: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target_keyspace = f"x_{uuid.uuid4().hex[:12]}"
    target = open_session(target_node.spec())
    try:
        target.execute(
            f"CREATE KEYSPACE {quote(target_keyspace)} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        env = script_env(keyspace, tmp_path, TARGET_CASSANDRA_PORT=str(TARGET_PORT), TARGET_KEYSPACE=target_keyspace)
        code, _, err = run_script("create.py", env, tmp_path, "--rows", "300", "--dirty", "--quiet")
        assert code == 0, err

        code, out, err = run_script("migrate.py", env, tmp_path, "--report", str(tmp_path / "m.json"))
        assert code == 1, out + err  # the dirty rows are rejected
        data = json.loads((tmp_path / "m.json").read_text())
        total = 300 + dirty_row_count()
        written = data["rows_written"]
        assert (data["rows_read"], data["rows_rejected"], written) == (total, 9, total - 9)  # the README's rules
        assert data["source"] == f"{keyspace}.legacy on 127.0.0.1:{PORT}"
        assert data["target"] == f"{target_keyspace}.migrated on 127.0.0.1:{TARGET_PORT}"

        # The rows, the target table and the state are on the second cluster, and only there.
        assert target.execute(f"SELECT COUNT(*) FROM {qualified(target_keyspace, 'migrated')}").one()[0] == written
        assert tables(target, target_keyspace) == {
            "migrated",
            "cassio_migration_jobs",
            "cassio_migration_ranges",
            "cassio_migration_digests",
            "cassio_migration_leases",
        }
        assert tables(session, keyspace) == {"legacy"}
        assert tables(session, target_keyspace) == set()
        context = json.loads(
            target.execute(f"SELECT context FROM {qualified(target_keyspace, 'cassio_migration_jobs')}").one().context
        )
        assert (
            context["target_cluster"] == f"127.0.0.1:{TARGET_PORT}" and context["cluster"] != context["target_cluster"]
        )
        legacy = {
            str(r.document_id): r.document
            for r in session.execute(f"SELECT document_id, document FROM {qualified(keyspace, 'legacy')}")
        }
        for r in target.execute(f"SELECT row_id, body_blob FROM {qualified(target_keyspace, 'migrated')} LIMIT 20"):
            assert legacy[str(r.row_id)] == r.body_blob

        verified = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
        assert (verified["matching"], verified["missing"], verified["different"]) == (written, 0, 0)

        code, _, err = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(tmp_path / "again.json"))
        again = json.loads((tmp_path / "again.json").read_text())
        # The rows copied are skipped; the rejected ones are tried again, and rejected again.
        assert (code, again["pass_number"], again["rows_skipped"], again["rows_rejected"]) == (1, 2, written, 9), err

        # Local worker processes connect to both clusters too.
        two = {**env, "TARGET_TABLE": "migrated_by_workers"}
        code, out, err = run_script(
            "migrate.py", two, tmp_path, "--workers", "2", "--quiet", "--report", str(tmp_path / "w.json")
        )
        assert code == 1 and json.loads((tmp_path / "w.json").read_text())["rows_written"] == written, out + err
        assert (
            report_of("migrate.py", two, tmp_path, "--verify", "--workers", "2", report="wv.json")["matching"]
            == written
        )
    finally:
        close_session(target)


def test_unreachable_target_cluster_is_one_line_naming_its_settings(bundle, keyspace: str) -> None:  # type: ignore[no-untyped-def]
    assert bundle("create.py", "--rows", "3", "--quiet").code == 0
    result = bundle("migrate.py", TARGET_CASSANDRA_PORT="1")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0] and "TARGET_CASSANDRA_PORT" in lines[0], lines
