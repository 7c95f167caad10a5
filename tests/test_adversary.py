"""The cutover flow against an adversary, on the real node: late rows, overlapping runs, rows the
target refuses, keys that do not round-trip, moved partitions, a foreign partitioner, dry runs.

Each test plays one way the flow could lose a row, delete the application's rows or never
finish, and asserts what is read back, the counts, the exit code and the one line.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from cassio_migration.cql import qualified
from cassio_migration.errors import FatalError
from cassio_migration.lease import Lease
from cassio_migration.plan import make_plan
from cassio_migration.state import StateStore
from tests.helpers import (
    OwnNode,
    one_error_line,
    own_node,
    read_report,
    run_script,
    script_env,
    start_migration,
    wait_for_ranges,
)
from tests.test_migrate import app_table, count

LEASES = "cassio_migration_leases"  # written out, so that this module also runs against older versions
PARTITIONER_PORT = 9053  # a RandomPartitioner node of the partitioner test's own (storage port 7011)
VECTOR = [0.25] * 16


def legacy_insert(session: Session, keyspace: str, metadata: Any = None, *, ts: int | None = None, **row: Any) -> Any:
    """Write one legacy vector row as an application on cassio 0.0.7 did (a new key unless given)."""
    key = row.get("key", uuid.uuid4())
    blob = metadata if isinstance(metadata, str) or metadata is None else json.dumps(metadata)
    using = f" USING TIMESTAMP {ts}" if ts is not None else ""
    session.execute(
        f"INSERT INTO {qualified(keyspace, 'legacy')} (document_id, embedding_vector, document, metadata_blob)"
        f" VALUES (%s, %s, %s, %s){using}",
        (key, row.get("vector", VECTOR), row.get("document", f"doc {key}"), blob),
    )
    return key


def migrate(bundle: Any, tmp_path: Path, name: str, *args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    """migrate.py with a report: (exit code, report, stderr)."""
    result = bundle("migrate.py", "--quiet", "--report", str(tmp_path / name), *args, **env)
    report = read_report(tmp_path / name) if (tmp_path / name).exists() else {}
    return result.code, report, result.err


def writetime(session: Session, keyspace: str, key: Any) -> int:
    row = session.execute(
        f"SELECT WRITETIME(body_blob) FROM {qualified(keyspace, 'migrated')} WHERE row_id = %s", (key,)
    ).one()
    assert row is not None, f"{key} is not in the target"
    return int(row[0])


def test_delete_extra_after_the_rerun_keeps_the_applications_rows(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    """After the cutover the application writes to the target; the re-run, then --delete-extra: its rows stay."""
    assert bundle("create.py", "--rows", "20", "--quiet").code == 0
    assert migrate(bundle, tmp_path, "m1.json")[0] == 0
    app = app_table(session, keyspace, "migrated")
    app_key = uuid.uuid4()
    app.put(row_id=app_key, body_blob="the application's, after the cutover", vector=VECTOR, metadata={})
    gone = [r[0] for r in session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 2")]
    for key in gone:  # deleted from the legacy table: their copies are the migration's extras
        session.execute(f"DELETE FROM {qualified(keyspace, 'legacy')} WHERE document_id = %s", (key,))
    code, rerun, _ = migrate(bundle, tmp_path, "m2.json")
    assert (code, rerun["pass_number"], rerun["rows_skipped"]) == (0, 2, 18)

    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify", "--delete-extra", "--yes")
    assert (code, report["extra_deleted"], report["extra"]) == (0, 2, 1)
    assert report["examples"]["extra"] == [str(app_key)]
    assert app.get(row_id=app_key) is not None
    assert all(app.get(row_id=k) is None for k in gone)
    assert count(session, keyspace, "migrated") == 19


def test_a_late_row_with_an_old_write_time_is_missing_then_copied_by_the_rerun(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    """A hint, a repair or a restore delivers a row after the pass, with a write time from before it."""
    assert bundle("create.py", "--rows", "20", "--quiet").code == 0
    assert migrate(bundle, tmp_path, "m1.json")[0] == 0
    hour_ago = int((time.time() - 3600) * 1_000_000)
    late = legacy_insert(session, keyspace, {"late": True}, ts=hour_ago)

    code, report, _ = migrate(bundle, tmp_path, "v1.json", "--verify")
    assert (code, report["missing"], report["deleted_in_target"]) == (1, 1, 0)
    assert report["examples"]["missing"] == [str(late)]

    code, rerun, _ = migrate(bundle, tmp_path, "m2.json")
    assert (code, rerun["rows_written"], rerun["rows_skipped"]) == (0, 1, 20)
    assert writetime(session, keyspace, late) == hour_ago  # its own write time, as always
    code, report, _ = migrate(bundle, tmp_path, "v2.json", "--verify")
    assert (code, report["matching"], report["missing"]) == (0, 21, 0)


def test_verify_finds_missing_and_different_rows_and_exits_1(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "20", "--quiet").code == 0
    assert migrate(bundle, tmp_path, "m1.json")[0] == 0
    new = legacy_insert(session, keyspace, {"new": 1})
    changed = session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 1").one()[0]
    session.execute(
        f"UPDATE {qualified(keyspace, 'legacy')} SET document = 'changed in the source' WHERE document_id = %s",
        (changed,),
    )
    result = bundle("migrate.py", "--verify", "--report", str(tmp_path / "v1.json"))
    report = read_report(tmp_path / "v1.json")
    assert (result.code, report["status"], report["missing"], report["different"]) == (1, "differences", 1, 1)
    assert (report["examples"]["missing"], report["examples"]["different"]) == ([str(new)], [str(changed)])
    assert "DIFFERENCES FOUND" in result.out and str(new) in result.out

    assert migrate(bundle, tmp_path, "m2.json")[0] == 0
    code, report, _ = migrate(bundle, tmp_path, "v2.json", "--verify")
    assert (code, report["missing"], report["different"], report["matching"]) == (0, 0, 0, 21)


@pytest.fixture
def lease_row(session: Session, keyspace: str) -> Iterator[Any]:
    def read() -> Any:
        return session.execute(f"SELECT * FROM {qualified(keyspace, LEASES)} WHERE job = 'migrated'").one()

    yield read


@pytest.mark.slow
def test_a_second_run_of_the_same_job_is_refused_while_the_first_runs(
    bundle, session: Session, keyspace: str, tmp_path: Path, lease_row: Any
) -> None:
    assert bundle("create.py", "--rows", "1500", "--quiet").code == 0
    # Slow (15 s and more), so that the first run still runs when the others start on a busy machine.
    first = start_migration(keyspace, tmp_path, "--splits", "16", "--rate-limit", "100")
    wait_for_ranges(session, keyspace, first, 1)
    second = bundle("migrate.py", "--quiet")
    line = one_error_line(second.err)
    assert second.code == 2
    assert f"process {first.pid} on {socket.gethostname()} holds its lease" in line
    assert "wait for that run to end" in line
    restart = bundle("migrate.py", "--restart", "--yes", "--quiet")  # a restart cannot take the job away either
    assert first.poll() is None, "the first run ended before the others started: the test proves nothing"
    assert restart.code == 2 and "holds its lease" in restart.err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert lease_row() is None  # let go at the end
    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify")
    assert (code, report["matching"]) == (0, 1500)


@pytest.mark.slow
def test_a_killed_runs_lease_is_taken_over_on_its_machine_and_expires_elsewhere(
    bundle, session: Session, keyspace: str, tmp_path: Path, lease_row: Any
) -> None:
    assert bundle("create.py", "--rows", "1000", "--quiet").code == 0
    first = start_migration(keyspace, tmp_path, "--splits", "16", "--rate-limit", "300")
    wait_for_ranges(session, keyspace, first, 1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert lease_row() is not None  # a killed run cannot let go
    code, resumed, err = migrate(bundle, tmp_path, "r.json")  # the same machine sees its holder is gone
    assert code == 0, err
    assert resumed["resumed"] is True

    # A run on another machine that vanished: its lease (10 s in the tests) runs out by itself.
    ttl = 4
    session.execute(
        f"INSERT INTO {qualified(keyspace, LEASES)} (job, owner, taken_at, expires_at)"
        f" VALUES ('migrated', 'elsewhere:4242:cafe', toTimestamp(now()), toTimestamp(now())) USING TTL {ttl}"
    )
    refused = bundle("migrate.py", "--quiet")
    assert refused.code == 2 and "process 4242 on elsewhere holds its lease" in one_error_line(refused.err)
    time.sleep(ttl + 1)
    code, rerun, err = migrate(bundle, tmp_path, "m2.json")
    assert (code, rerun["pass_number"]) == (0, 2), err


def test_a_pass_is_finished_only_by_its_own_run(session: Session, keyspace: str) -> None:
    """A restart by another run starts pass 2: the first run's end of pass 1 is refused, pass 2 resumes whole."""
    plan = make_plan([0], 8)
    first, second = (StateStore(session, keyspace, "migrated") for _ in range(2))
    first.create_tables()
    pass_1 = first.begin({"job": "a"}, plan, restart=False)
    pass_2 = second.begin({"job": "b"}, plan, restart=True)
    assert (pass_1.number, pass_2.number) == (1, 2)
    with pytest.raises(FatalError, match="another run of this job changed pass 1"):
        first.finish_pass(pass_1)
    resumed = StateStore(session, keyspace, "migrated").begin({"job": "b"}, plan, restart=False)
    assert (resumed.number, resumed.resumed, len(resumed.ranges)) == (2, True, 8)
    second.finish_pass(pass_2)
    assert StateStore(session, keyspace, "migrated").job_row().pass_status == "done"


def test_a_pass_ended_by_a_killed_runs_late_request_is_finished_by_the_run_that_resumed_it(
    session: Session, keyspace: str
) -> None:
    """migrate.py killed right after its last range: its end of pass reaches the node after the next
    run resumed the pass (the lease of a dead process is taken over at once). Found by test_model."""
    plan = make_plan([0], 4)
    killed, resumed = (StateStore(session, keyspace, "migrated") for _ in range(2))
    killed.create_tables()
    pass_1 = killed.begin({"job": "a"}, plan, restart=False)
    again = resumed.begin({"job": "a"}, plan, restart=False)
    assert (again.number, again.resumed) == (1, True)
    killed.finish_pass(pass_1)  # the dead run's request, landing late
    resumed.finish_pass(again)  # was: FatalError "another run of this job changed pass 1 meanwhile"
    row = StateStore(session, keyspace, "migrated").job_row()
    assert (row.pass_number, row.pass_status) == (1, "done")
    # A restart in between is still refused: its pass has another number.
    pass_2 = resumed.begin({"job": "a"}, plan, restart=False)
    StateStore(session, keyspace, "migrated").begin({"job": "b"}, plan, restart=True)
    with pytest.raises(FatalError, match="another run of this job changed pass 2"):
        resumed.finish_pass(pass_2)


def test_rows_the_database_refuses_are_rejected_with_its_message_and_the_range_goes_on(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "0", "--quiet").code == 0
    for i in range(10):
        legacy_insert(session, keyspace, {"tenant": f"t{i % 2}"})
    empty = legacy_insert(session, keyspace, {"tenant": ""})  # Cassandra refuses an empty partition key
    huge = legacy_insert(session, keyspace, {"tenant": "x" * 70_000})  # a partition key past 64 KiB
    env = {"TARGET_PARTITION_FIELD": "tenant"}
    code, report, err = migrate(bundle, tmp_path, "m.json", "--splits", "4", **env)
    assert (code, report["rows_written"], report["rows_rejected"], report["status"]) == (
        1,
        10,
        2,
        "done_with_rejects",
    ), err
    records = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert {r["key"] for r in records} == {str(empty), str(huge)}
    assert {r["reason"] for r in records} == {"refused_by_database"}
    by_key = {r["key"]: r["detail"] for r in records}
    assert "Key may not be empty" in by_key[str(empty)]
    assert "longer than maximum of 65535" in by_key[str(huge)]
    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify", **env)
    assert (code, report["matching"], report["missing"]) == (1, 10, 2)  # never copied: missing, not hidden

    fixed = Path(tmp_path / "fixed.jsonl")
    lines = []
    for r in records:
        metadata = json.loads(r["row"]["metadata_blob"])
        metadata["tenant"] = metadata["tenant"][:8] or "t0"
        r["row"]["metadata_blob"] = json.dumps(metadata)
        lines.append(json.dumps(r))
    fixed.write_text("\n".join(lines) + "\n")
    code, replayed, err = migrate(bundle, tmp_path, "r.json", "--replay", str(fixed), **env)
    assert (code, replayed["rows_written"], replayed["rows_rejected"]) == (0, 2, 0), err
    assert count(session, keyspace, "migrated") == 12


def test_llm_cache_keys_that_do_not_round_trip_are_rejected_and_never_deleted(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--kind", "kvcache", "--rows", "20", "--quiet").code == 0
    odd = {
        '["double quotes"]': "cache_key_not_canonical",
        "[1e999]": "cache_key_not_canonical",
        "[{1, 2}]": "cache_key_unstorable",
        "[b'bytes']": "cache_key_unstorable",
        "('a', 'tuple')": "cache_key_malformed",
    }
    for cache_key in odd:
        session.execute(
            f"INSERT INTO {qualified(keyspace, 'legacy')} (key_desc, cache_key, cache_value) VALUES (%s, %s, %s)",
            ("prompt", cache_key, "a cached answer"),
        )
    code, report, err = migrate(bundle, tmp_path, "m.json")
    assert (code, report["rows_written"], report["rows_rejected"]) == (1, 20, 5), err
    records = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert {json.loads(r["key"])[1]: r["reason"] for r in records} == odd
    target_rows = count(session, keyspace, "migrated")
    assert target_rows == 20
    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify", "--delete-extra", "--yes")
    assert (code, report["extra"], report["extra_deleted"], report["rejected"], report["matching"]) == (0, 0, 0, 5, 20)
    assert count(session, keyspace, "migrated") == target_rows


def test_rows_rejected_by_a_pass_are_tried_again_by_the_next(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "30", "--dirty", "--quiet").code == 0
    code, first, _ = migrate(bundle, tmp_path, "m1.json")
    rejected = first["rows_rejected"]
    assert code == 1 and rejected > 0
    code, rerun, _ = migrate(bundle, tmp_path, "m2.json")
    # Still out under the same rules, and said so: not hidden among the unchanged rows.
    assert (code, rerun["rows_rejected"], rerun["rows_written"]) == (1, rejected, 0)
    assert rerun["rows_skipped"] == first["rows_written"]
    assert rerun["rejects_file"] is not None


def test_a_row_moved_to_another_partition_leaves_an_extra_that_delete_extra_removes(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "0", "--quiet").code == 0
    keys = [legacy_insert(session, keyspace, {"tenant": "a"}) for _ in range(5)]
    env = {"TARGET_PARTITION_FIELD": "tenant"}
    assert migrate(bundle, tmp_path, "m1.json", **env)[0] == 0
    moved = keys[0]
    legacy_insert(session, keyspace, {"tenant": "b"}, key=moved, document=f"doc {moved}")
    code, rerun, _ = migrate(bundle, tmp_path, "m2.json", **env)
    assert (code, rerun["rows_written"], rerun["rows_skipped"]) == (0, 1, 4)

    code, report, _ = migrate(bundle, tmp_path, "v1.json", "--verify", **env)
    assert (code, report["matching"], report["extra"]) == (0, 5, 1)
    assert report["examples"]["extra"] == [str(moved)]
    code, report, _ = migrate(bundle, tmp_path, "v2.json", "--verify", "--delete-extra", "--yes", **env)
    assert (code, report["extra_deleted"]) == (0, 1)
    placed = session.execute(
        f"SELECT partition_id FROM {qualified(keyspace, 'migrated')} WHERE row_id = %s ALLOW FILTERING", (moved,)
    ).all()
    assert [r.partition_id for r in placed] == ["b"]


@pytest.fixture
def random_partitioner_node(tmp_path_factory: pytest.TempPathFactory, node: Any) -> Iterator[OwnNode]:
    yield from own_node(
        PARTITIONER_PORT, tmp_path_factory.mktemp("node-random"), CASSANDRA_PARTITIONER="RandomPartitioner"
    )


@pytest.mark.slow
def test_a_cluster_with_another_partitioner_is_refused(
    random_partitioner_node: OwnNode, keyspace: str, tmp_path: Path
) -> None:
    env = script_env(keyspace, tmp_path, port=PARTITIONER_PORT)
    vectors = run_script("create.py", env, tmp_path, "--rows", "50", "--quiet")  # SAI needs Murmur3 as well
    assert vectors.code == 2 and "the source cluster uses RandomPartitioner" in one_error_line(vectors.err)
    # A chat history needs no index: such a legacy table can live there.
    created = run_script("create.py", env, tmp_path, "--kind", "history", "--rows", "50", "--quiet")
    assert created.code == 0, created.err
    for args in ([], ["--verify"]):
        result = run_script("migrate.py", env, tmp_path, "--quiet", *args)
        line = one_error_line(result.err)
        assert result.code == 2
        assert "the source cluster uses RandomPartitioner" in line and "Murmur3Partitioner only" in line


def test_verify_delete_extra_dry_run_deletes_nothing(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "20", "--quiet").code == 0
    assert migrate(bundle, tmp_path, "m.json")[0] == 0
    for (key,) in session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 2"):
        session.execute(f"DELETE FROM {qualified(keyspace, 'legacy')} WHERE document_id = %s", (key,))
    result = bundle(
        "migrate.py", "--verify", "--delete-extra", "--dry-run", "--yes", "--report", str(tmp_path / "d.json")
    )
    report = read_report(tmp_path / "d.json")
    assert (result.code, report["extra_deleted"], report["dry_run"]) == (0, 2, True)
    assert "would be deleted" in result.out
    assert count(session, keyspace, "migrated") == 20
    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify", "--delete-extra", "--yes")
    assert (code, report["extra_deleted"]) == (0, 2)
    assert count(session, keyspace, "migrated") == 18


def test_a_lease_that_ran_out_is_taken_again_unless_another_run_took_it(
    session: Session, keyspace: str, lease_row: Any
) -> None:
    held = Lease(session, keyspace, "migrated", seconds=4)
    held.create_table()
    with held:
        # Ran out while this run could not reach the database, and nobody took it: taken again.
        session.execute(f"DELETE FROM {qualified(keyspace, LEASES)} WHERE job = 'migrated'")
        deadline = time.monotonic() + 5
        while (lease_row() is None or lease_row().owner != held.owner) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lease_row().owner == held.owner and not held.lost
        # Another run took it meanwhile: this one learns it at its next renewal, and stops.
        session.execute(f"UPDATE {qualified(keyspace, LEASES)} SET owner = 'elsewhere:1:x' WHERE job = 'migrated'")
        deadline = time.monotonic() + 5
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.2)
        with pytest.raises(FatalError, match="another run took the job meanwhile"):
            held.check()
    assert lease_row().owner == "elsewhere:1:x"  # never let go of what is not its own


def test_a_lease_held_for_many_times_its_length_stays_held(session: Session, keyspace: str, lease_row: Any) -> None:
    """Each renewal gives every cell a new TTL: a lease renewed past its first TTL is still whole."""
    held = Lease(session, keyspace, "migrated", seconds=2)
    held.create_table()
    with held:
        time.sleep(7)
        row = lease_row()
        assert row is not None and row.owner == held.owner and not held.lost
        held.check()
    assert lease_row() is None


def test_a_replayed_fix_of_a_rejected_row_is_not_counted_extra(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    """The source still holds the rejected row: its fixed copy in the target is not an extra (found by test_model)."""
    assert bundle("create.py", "--rows", "5", "--quiet").code == 0
    bad = legacy_insert(session, keyspace, '{"not": JSON')
    code, report, _ = migrate(bundle, tmp_path, "m.json")
    assert (code, report["rows_written"], report["rows_rejected"]) == (1, 5, 1)
    records = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    records[0]["row"]["metadata_blob"] = '{"fixed": true}'
    (tmp_path / "fixed.jsonl").write_text(json.dumps(records[0]) + "\n")
    code, replayed, _ = migrate(bundle, tmp_path, "r.json", "--replay", str(tmp_path / "fixed.jsonl"))
    assert (code, replayed["rows_written"]) == (0, 1)

    code, report, _ = migrate(bundle, tmp_path, "v.json", "--verify", "--delete-extra", "--yes")
    assert (code, report["matching"], report["rejected"], report["extra"], report["extra_deleted"]) == (0, 5, 1, 0, 0)
    assert count(session, keyspace, "migrated") == 6  # the fix stays
    assert (
        session.execute(f"SELECT row_id FROM {qualified(keyspace, 'migrated')} WHERE row_id = %s", (bad,)).one()
        is not None
    )
