"""create.py, migrate.py and --verify on the real node, driven as a user drives them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassio.table.tables import MetadataVectorCassandraTable

from cassio_migration.cql import qualified
from cassio_migration.seed import DIRTY_KINDS, dirty_row_count
from tests.helpers import read_report

KEY_TYPES = ["uuid", "text", "autoid"]


def count(session: Session, keyspace: str, table: str) -> int:
    return session.execute(f"SELECT COUNT(*) FROM {qualified(keyspace, table)}").one()[0]


def app_table(session: Session, keyspace: str, table: str) -> MetadataVectorCassandraTable:
    """The table as an application on cassio 0.1.x opens it (`cassio.vector.VectorTable`'s layout)."""
    return MetadataVectorCassandraTable(
        session=session,
        keyspace=keyspace,
        table=table,
        vector_dimension=16,
        primary_key_type="UUID",
        metadata_indexing="all",
    )


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_create_migrate_verify_clean(bundle, session: Session, keyspace: str, tmp_path: Path, key_type: str) -> None:
    created = bundle("create.py", "--rows", "300", "--key-type", key_type, "--quiet")
    assert created.code == 0, created.err
    assert count(session, keyspace, "legacy") == 300

    migrated = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "m.json"))
    assert migrated.code == 0, migrated.err
    data = read_report(tmp_path / "m.json")
    assert (data["status"], data["rows_read"], data["rows_written"], data["rows_rejected"]) == ("done", 300, 300, 0)
    assert data["rows_per_s"] > 0 and data["elapsed_s"] > 0 and data["rejects_file"] is None
    assert count(session, keyspace, "migrated") == 300

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    assert verified.code == 0, verified.out + verified.err
    v = read_report(tmp_path / "v.json")
    assert (v["status"], v["matching"], v["missing"], v["different"], v["extra"]) == ("clean", 300, 0, 0, 0)


def test_dirty_rows_are_rejected_with_reasons_and_accounted_for(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "50", "--dirty", "--quiet").code == 0
    migrated = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "m.json"))
    assert migrated.code == 1, migrated.err  # done, with rejected rows
    data = read_report(tmp_path / "m.json")
    total = 50 + dirty_row_count()
    # Rejected: malformed JSON and JSON list / number (3 rows each); the rest is migrated.
    assert data["rows_read"] == total
    assert data["rows_rejected"] == 9
    assert data["rows_written"] == total - 9
    rejects = [json.loads(line) for line in Path(data["rejects_file"]).read_text().splitlines()]
    reasons = sorted(r["reason"] for r in rejects)
    assert reasons == ["metadata_malformed_json"] * 3 + ["metadata_not_object"] * 6
    assert {r["row"]["metadata_blob"] for r in rejects} == {'{"source": "broken', "[1, 2, 3]", "42"}
    assert "rows rejected" in migrated.out and "rejects file" in migrated.out

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    assert verified.code == 0, verified.out
    v = read_report(tmp_path / "v.json")
    assert (v["matching"], v["rejected"], v["missing"], v["different"]) == (total - 9, 9, 0, 0)


def test_dirty_rows_follow_the_stated_rules(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--rows", "0", "--dirty", "--quiet").code == 0
    assert bundle("migrate.py", "--quiet", "--wrap-metadata", "legacy_value").code == 0
    table = app_table(session, keyspace, "migrated")
    legacy = {r.document_id: r for r in session.execute(f"SELECT * FROM {qualified(keyspace, 'legacy')}")}
    seen = set()
    for key, row in legacy.items():
        got = table.get(row_id=key)
        assert got is not None
        kind = next(k for k, doc, blob, has_vector in DIRTY_KINDS if (doc, blob) == (row.document, row.metadata_blob))
        seen.add(kind)
        expected_md = {
            "malformed_json": {"legacy_value": '{"source": "broken'},
            "json_list": {"legacy_value": "[1, 2, 3]"},  # cassio stores str() of a list
            "json_number": {"legacy_value": "42.0"},  # and an int as a float string
            "json_null": {},
            "null_metadata": {},
            "empty_metadata": {},
            "null_document": {"kind": "null document"},
            "null_vector": {"kind": "null vector"},
        }[kind]
        assert got["metadata"] == expected_md, kind
        assert got["body_blob"] == row.document
        assert (got["vector"] is None) == (kind == "null_vector")
    assert seen == {k for k, *_ in DIRTY_KINDS}


def test_rows_equal_what_cassio_put_writes(bundle, session: Session, keyspace: str) -> None:
    """For every kind of metadata value, the migrated row is the row cassio 0.1.x `put` writes."""
    metadatas = [
        {},
        {"s": "text", "u": "ünï 東京"},
        {"i": 1, "neg": -7, "big": 2**53},
        {"f": 1.5, "e": 1e-12, "z": 0.0},
        {"t": True, "f": False},
        {"n": None},
        {"l": [1, "a", None, 2.5]},
        {"d": {"x": {"y": [1]}}},
        {"ключ": "значение", 'quote"key': "it's"},
        {"mixed": [{"a": 1}], "b": True, "c": 3},
    ]
    vectors = [[float(i + j) / 10 + 0.01 for j in range(16)] for i in range(len(metadatas))]
    legacy = qualified(keyspace, "legacy")
    assert bundle("create.py", "--rows", "0", "--quiet").code == 0
    insert = session.prepare(
        f"INSERT INTO {legacy} (document_id, embedding_vector, document, metadata_blob) VALUES (?, ?, ?, ?)"
    )
    keys = [uuid.uuid4() for _ in metadatas]
    for key, vector, md in zip(keys, vectors, metadatas):
        session.execute(insert, (key, vector, f"doc {key}", json.dumps(md)))  # as cassio 0.0.7 put writes it
    assert bundle("migrate.py", "--quiet").code == 0

    reference = app_table(session, keyspace, "by_cassio")
    for key, vector, md in zip(keys, vectors, metadatas):
        reference.put(row_id=key, body_blob=f"doc {key}", vector=vector, metadata=md)
    columns = "row_id, body_blob, vector, attributes_blob, metadata_s"
    ours = {r.row_id: r for r in session.execute(f"SELECT {columns} FROM {qualified(keyspace, 'migrated')}")}
    theirs = {r.row_id: r for r in session.execute(f"SELECT {columns} FROM {qualified(keyspace, 'by_cassio')}")}
    assert set(ours) == set(keys)
    for key in keys:
        assert ours[key] == theirs[key]


def test_write_time_and_ttl_are_carried_over(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--rows", "200", "--ttl-fraction", "0.5", "--quiet").code == 0
    assert bundle("migrate.py", "--quiet").code == 0
    source = {
        r[0]: r[1:]
        for r in session.execute(
            f"SELECT document_id, WRITETIME(document), TTL(document) FROM {qualified(keyspace, 'legacy')}"
        )
    }
    target = {
        r[0]: r[1:]
        for r in session.execute(
            f"SELECT row_id, WRITETIME(body_blob), TTL(body_blob), WRITETIME(vector), TTL(vector) FROM {qualified(keyspace, 'migrated')}"
        )
    }
    with_ttl = 0
    for key, (wt, ttl) in source.items():
        twt, tttl, vwt, vttl = target[key]
        assert vttl == tttl
        assert twt == wt and vwt == wt
        if ttl is None:
            assert tttl is None
        else:
            with_ttl += 1
            # The target's TTL counts from its write, a moment after the source was read: it may
            # end up to the copy's latency (plus TTL's 1 s granularity) later, never earlier.
            assert tttl is not None and ttl - 60 <= tttl <= ttl + 5
    assert 60 < with_ttl < 140


def test_rerun_after_cutover_keeps_updates_and_deletions(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    """The application (cassio 0.1.x) updates and deletes target rows; a full re-run undoes neither."""
    assert bundle("create.py", "--rows", "100", "--quiet").code == 0
    assert bundle("migrate.py", "--quiet").code == 0
    app = app_table(session, keyspace, "migrated")
    keys = [r[0] for r in session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 4")]
    updated, deleted = keys[:2], keys[2:]
    for key in updated:
        app.put(row_id=key, body_blob="edited by the app", vector=[0.5] * 16, metadata={"edited": True})
    for key in deleted:
        app.delete(row_id=key)

    rerun = bundle("migrate.py", "--full", "--quiet", "--report", str(tmp_path / "m.json"))
    assert rerun.code == 0, rerun.err
    assert read_report(tmp_path / "m.json")["rows_written"] == 100  # --full rewrote every row ...
    for key in updated:  # ... yet the application's newer writes stand
        row = app.get(row_id=key)
        assert row is not None and row["body_blob"] == "edited by the app" and row["metadata"] == {"edited": "true"}
    for key in deleted:  # ... and its deletions too
        assert app.get(row_id=key) is None

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    v = read_report(tmp_path / "v.json")
    assert v["target_newer"] == 2 and v["different"] == 0
    assert sorted(v["examples"]["target_newer"]) == sorted(str(k) for k in updated)
    assert (v["deleted_in_target"], v["missing"]) == (2, 0)  # deleted by the app after the migration
    assert sorted(v["examples"]["deleted_in_target"]) == sorted(str(k) for k in deleted)
    assert verified.code == 0


def test_rerun_copies_only_rows_written_since(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "0", "--quiet").code == 0
    insert = session.prepare(
        f"INSERT INTO {qualified(keyspace, 'legacy')} (document_id, embedding_vector, document, metadata_blob)"
        " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
    )
    hour_ago = int((time.time() - 3600) * 1e6)
    for i in range(100):  # rows the application wrote an hour ago
        session.execute(insert, (uuid.uuid4(), [1.0 + i] * 16, f"old {i}", "{}", hour_ago))
    first = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "1.json"))
    assert first.code == 0 and read_report(tmp_path / "1.json")["rows_written"] == 100
    for i in range(10):  # rows written after the first pass
        session.execute(insert, (uuid.uuid4(), [2.0 + i] * 16, f"new {i}", "{}", int(time.time() * 1e6)))

    rerun = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "2.json"))
    assert rerun.code == 0, rerun.err
    data = read_report(tmp_path / "2.json")
    assert (data["pass_number"], data["rows_read"], data["rows_written"], data["rows_skipped"]) == (2, 110, 10, 100)
    assert "rows skipped (unchanged)" in rerun.out
    full = bundle("migrate.py", "--full", "--quiet", "--report", str(tmp_path / "3.json"))
    assert full.code == 0 and read_report(tmp_path / "3.json")["rows_written"] == 110
    assert bundle("migrate.py", "--verify", "--quiet").code == 0


def test_not_a_legacy_table_is_refused(bundle, session: Session, keyspace: str) -> None:
    session.execute(f"CREATE TABLE {qualified(keyspace, 'legacy')} (id int PRIMARY KEY, body text)")
    result = bundle("migrate.py")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"error: {keyspace}.legacy is not a legacy cassio table: found columns (body text, id int); expected the"
        " columns of a cassio 0.0.x VectorTable (document_id, embedding_vector, document, metadata_blob),"
        " StoredBlobHistory (session_id, blob_id, blob), KVCache (key_desc, cache_key, cache_value); check OLD_TABLE"
    ]


def test_missing_table_and_bad_setting_give_one_line(bundle) -> None:
    missing = bundle("migrate.py")
    assert missing.code == 2 and "does not exist" in missing.err and len(missing.err.strip().splitlines()) == 1
    bad = bundle("migrate.py", CASSANDRA_PORT="not-a-port")
    assert bad.code == 2
    assert bad.err.strip() == "error: CASSANDRA_PORT: 'not-a-port' is not a whole number"
    unset = bundle("migrate.py", TARGET_TABLE="")
    assert unset.code == 2 and unset.err.startswith("error: TARGET_TABLE: not set")
    assert "Traceback" not in missing.err + bad.err + unset.err


def test_incompatible_target_is_refused_and_nothing_written(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--rows", "20", "--quiet").code == 0
    session.execute(f"CREATE TABLE {qualified(keyspace, 'migrated')} (row_id uuid PRIMARY KEY, body_blob text)")
    result = bundle("migrate.py")
    assert result.code == 2
    assert "exists with another layout" in result.err and len(result.err.strip().splitlines()) == 1
    assert count(session, keyspace, "migrated") == 0


def test_dry_run_writes_nothing(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "30", "--dirty", "--quiet").code == 0
    result = bundle("migrate.py", "--dry-run", "--quiet", "--report", str(tmp_path / "d.json"))
    assert result.code == 1  # it would reject the dirty rows
    data = read_report(tmp_path / "d.json")
    assert data["dry_run"] is True and data["rows_read"] == 30 + dirty_row_count() and data["rows_rejected"] == 9
    tables = {
        r.table_name
        for r in session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    }
    assert tables == {"legacy"}


def test_uuid_keys_converted_to_text(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--rows", "100", "--quiet").code == 0
    assert bundle("migrate.py", "--key-type", "text", "--quiet").code == 0
    kind = (
        session.execute(
            "SELECT type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = 'migrated' AND column_name = 'row_id'",
            (keyspace,),
        )
        .one()
        .type
    )
    assert kind == "text"
    sample = session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 1").one().document_id
    assert session.execute(
        f"SELECT row_id FROM {qualified(keyspace, 'migrated')} WHERE row_id = %s", (str(sample),)
    ).one()
    verified = bundle("migrate.py", "--verify", "--key-type", "text", "--quiet")
    assert verified.code == 0, verified.out


def test_create_refuses_a_table_with_rows_without_append(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--rows", "5", "--quiet").code == 0
    again = bundle("create.py", "--rows", "5", "--quiet")
    assert again.code == 2 and "already has rows" in again.err and "--append" in again.err
    assert bundle("create.py", "--rows", "5", "--seed", "9", "--append", "--quiet").code == 0
    assert count(session, keyspace, "legacy") == 10


def test_delete_extra_removes_only_rows_the_migration_wrote(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "50", "--quiet").code == 0
    assert bundle("migrate.py", "--quiet").code == 0
    gone = [r[0] for r in session.execute(f"SELECT document_id FROM {qualified(keyspace, 'legacy')} LIMIT 3")]
    for key in gone:  # deleted in the source after the migration
        session.execute(f"DELETE FROM {qualified(keyspace, 'legacy')} WHERE document_id = %s", (key,))
    app = app_table(session, keyspace, "migrated")
    new_key = uuid.uuid4()
    app.put(row_id=new_key, body_blob="written by the app after the cutover", vector=[0.3] * 16, metadata={})

    listed = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v1.json"))
    v1 = read_report(tmp_path / "v1.json")
    assert (listed.code, v1["extra"], v1["extra_deleted"]) == (0, 4, 0)
    assert sorted(v1["examples"]["extra"]) == sorted(str(k) for k in [*gone, new_key])

    deleted = bundle(
        "migrate.py", "--verify", "--delete-extra", "--yes", "--quiet", "--report", str(tmp_path / "v2.json")
    )
    v2 = read_report(tmp_path / "v2.json")
    assert (deleted.code, v2["extra"], v2["extra_deleted"]) == (0, 1, 3)
    assert all(app.get(row_id=k) is None for k in gone)
    assert app.get(row_id=new_key) is not None  # the application's row stays
    assert count(session, keyspace, "migrated") == 48
    assert bundle("migrate.py", "--delete-extra").code == 2  # only with --verify


def test_error_budget(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "50", "--dirty", "--quiet").code == 0  # 9 rows will be rejected
    spent = bundle("migrate.py", "--quiet", "--max-errors", "5", "--splits", "8")
    assert spent.code == 3
    assert spent.err.startswith("error: error budget spent: ") and "run the same command again" in spent.err
    assert len(spent.err.strip().splitlines()) == 1
    state = session.execute(f"SELECT pass_status FROM {qualified(keyspace, 'cassio_migration_jobs')}").one()
    assert state.pass_status == "running"  # saved, to resume
    share = bundle("migrate.py", "--quiet", "--max-errors", "1%")
    assert share.code == 3 and "more than the 1.00% allowed" in share.err
    within = bundle("migrate.py", "--quiet", "--max-errors", "20%", "--report", str(tmp_path / "m.json"))
    assert within.code == 1, within.err  # 9 of 74 rows: within 20%, done with rejected rows
    data = read_report(tmp_path / "m.json")
    assert data["resumed"] is True and data["pass_rows_rejected"] == 9
    bad = bundle("migrate.py", "--max-errors", "lots")
    assert bad.code == 2 and bad.err.startswith("error: --max-errors: 'lots'")


def test_fixed_rejects_replay(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "20", "--dirty", "--quiet").code == 0
    first = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "m.json"))
    assert first.code == 1
    rejects = Path(read_report(tmp_path / "m.json")["rejects_file"])
    fixed = tmp_path / "fixed.jsonl"
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    for record in lines:  # the user fixes the rows in the file
        record["row"]["metadata_blob"] = json.dumps({"fixed": True, "was": record["row"]["metadata_blob"]})
    fixed.write_text("".join(json.dumps(r) + "\n" for r in lines))
    replayed = bundle("migrate.py", "--replay", str(fixed), "--quiet", "--report", str(tmp_path / "r.json"))
    assert replayed.code == 0, replayed.err
    data = read_report(tmp_path / "r.json")
    assert (data["rows_read"], data["rows_written"], data["rows_rejected"]) == (9, 9, 0)
    app = app_table(session, keyspace, "migrated")
    for record in lines:
        row = app.get(row_id=uuid.UUID(record["row"]["document_id"]))
        assert row is not None and row["metadata"]["fixed"] == "true"
        assert row["body_blob"] == record["row"]["document"]
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    bad = bundle("migrate.py", "--replay", str(garbage))
    assert bad.code == 2 and "line 1: not a rejects record" in bad.err


def test_target_in_another_keyspace(bundle, session: Session, keyspace: str, tmp_path: Path) -> None:
    other = f"{keyspace}_target"
    session.execute(
        f"CREATE KEYSPACE {other} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    try:
        assert bundle("create.py", "--rows", "40", "--quiet").code == 0
        moved = bundle("migrate.py", "--quiet", TARGET_KEYSPACE=other)
        assert moved.code == 0, moved.err
        assert count(session, other, "migrated") == 40
        assert session.execute(f"SELECT job FROM {qualified(other, 'cassio_migration_jobs')}").one().job == "migrated"
        assert bundle("migrate.py", "--verify", "--quiet", TARGET_KEYSPACE=other).code == 0
        missing = bundle("migrate.py", TARGET_KEYSPACE=f"{keyspace}_nowhere")
        assert missing.code == 2 and "does not exist" in missing.err
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {other}", timeout=120)
