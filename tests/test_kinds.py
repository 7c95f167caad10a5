"""Every legacy kind on the real node: chat histories, LLM caches, and clustered vector targets.

Each kind goes through the same machinery as the vector path (plan, state, write time and
TTL, rejects, verification); these tests drive the scripts as a user does and read the
result back through cassio 0.1.x's own classes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassio.table.tables import ClusteredMetadataVectorCassandraTable, ElasticCassandraTable

from cassio_migration.cql import qualified
from cassio_migration.seed import dirty_row_count
from tests.helpers import read_report


def rows(session: Session, keyspace: str, table: str, columns: str) -> list:
    return list(session.execute(f"SELECT {columns} FROM {qualified(keyspace, table)}"))


def columns_of(session: Session, keyspace: str, table: str) -> dict[str, tuple[str, str, str]]:
    return {
        r.column_name: (r.kind, r.type, r.clustering_order)
        for r in session.execute(
            "SELECT column_name, kind, type, clustering_order FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    }


def test_chat_history_migrates_with_write_times_and_ttls(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--kind", "history", "--rows", "300", "--dirty", "--ttl-fraction", "0.5", "-q").code == 0
    result = bundle("migrate.py", "--report", str(tmp_path / "m.json"))
    assert result.code == 1, result.err  # the NULL-blob rows are rejected, and said so
    assert f"source {keyspace}.legacy: legacy cassio chat history table (0.0.x StoredBlobHistory)" in result.out
    data = read_report(tmp_path / "m.json")
    assert (data["rows_read"], data["rows_written"], data["rows_rejected"]) == (
        300 + dirty_row_count("history"),
        300,
        dirty_row_count("history"),
    )
    # The table 0.1.x StoredBlobHistory makes: newest messages first in each session.
    assert columns_of(session, keyspace, "migrated") == {
        "partition_id": ("partition_key", "text", "none"),
        "row_id": ("clustering", "timeuuid", "desc"),
        "body_blob": ("regular", "text", "none"),
    }
    source = {
        (r.session_id, r.blob_id): r
        for r in rows(session, keyspace, "legacy", "session_id, blob_id, blob, WRITETIME(blob) AS wt, TTL(blob) AS ttl")
        if r.blob is not None
    }
    target = {
        (r.partition_id, r.row_id): r
        for r in rows(
            session,
            keyspace,
            "migrated",
            "partition_id, row_id, body_blob, WRITETIME(body_blob) AS wt, TTL(body_blob) AS ttl",
        )
    }
    assert source.keys() == target.keys()
    for key, old in source.items():
        new = target[key]
        assert (new.body_blob, new.wt) == (old.blob, old.wt)
        assert (old.ttl is None) == (new.ttl is None)
        if old.ttl is not None:
            assert abs(new.ttl - old.ttl) <= 60
    assert any(r.ttl for r in source.values())

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    v = read_report(tmp_path / "v.json")
    assert verified.code == 0 and (v["matching"], v["rejected"], v["missing"]) == (300, 3, 0)

    again = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "again.json"))
    assert again.code == 1 and read_report(tmp_path / "again.json")["rows_skipped"] == 300  # a new pass, nothing new


def test_chat_history_reads_back_through_cassio_0_1(bundle, session: Session, keyspace: str) -> None:
    assert bundle("create.py", "--kind", "history", "--rows", "120", "-q").code == 0
    assert bundle("migrate.py", "-q").code == 0
    from cassio.history import StoredBlobHistory  # 0.1.x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history = StoredBlobHistory(session, keyspace, "migrated")
    sessions = {r.session_id for r in rows(session, keyspace, "legacy", "session_id")}
    assert len(sessions) > 3
    for session_id in sessions:
        # What 0.0.x StoredBlobHistory.retrieve returned: the session's blobs in blob_id order.
        old = [
            r.blob
            for r in session.execute(
                f"SELECT blob FROM {qualified(keyspace, 'legacy')} WHERE session_id = %s", (session_id,)
            )
        ]
        assert list(history.retrieve(session_id)) == old
        assert list(history.retrieve(session_id, max_count=2)) == old[-2:]


def test_llm_cache_migrates_and_reads_back_through_cassio_0_1(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--kind", "kvcache", "--rows", "200", "--dirty", "-q").code == 0
    result = bundle("migrate.py", "--report", str(tmp_path / "m.json"))
    assert result.code == 1, result.err
    assert f"source {keyspace}.legacy: legacy cassio LLM cache table (0.0.x KVCache)" in result.out
    data = read_report(tmp_path / "m.json")
    assert (data["rows_written"], data["rows_rejected"]) == (200, dirty_row_count("kvcache"))
    rejects = [json.loads(line) for line in Path(data["rejects_file"]).read_text().splitlines()]
    assert {r["reason"] for r in rejects} == {"cache_key_malformed"}

    # As LangChain's CassandraCache opens it on cassio 0.1.x (cassio 0.1.10's own KVCache wrapper hands
    # ElasticCassandraTable its arguments in the wrong order, so applications use the table class).
    cache = ElasticCassandraTable(
        session=session,
        keyspace=keyspace,
        table="migrated",
        keys=["llm_string", "prompt"],
        primary_key_type=["TEXT"] * 2,
    )
    legacy = rows(session, keyspace, "legacy", "cache_key, cache_value")
    good = [r for r in legacy if r.cache_value != "dirty"]
    assert len(good) == 200
    assert any('"' in r.cache_key and "\\n" in r.cache_key for r in good)  # quotes and escapes in the keys
    import ast

    for r in good:
        llm_string, prompt = ast.literal_eval(r.cache_key)  # what 0.0.x KVCache.put was given
        got = cache.get(llm_string=llm_string, prompt=prompt)
        assert got is not None and got["body_blob"] == r.cache_value
    assert cache.get(llm_string="never", prompt="cached") is None

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    v = read_report(tmp_path / "v.json")
    assert verified.code == 0 and (v["matching"], v["rejected"], v["missing"], v["extra"]) == (200, 6, 0, 0)


def test_llm_cache_rejects_replay_once_fixed_and_extras_are_found(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--kind", "kvcache", "--rows", "20", "--dirty", "-q").code == 0
    first = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "m.json"))
    assert first.code == 1
    rejects = Path(read_report(tmp_path / "m.json")["rejects_file"])
    fixed = tmp_path / "fixed.jsonl"
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    for n, record in enumerate(records):
        record["row"]["cache_key"] = str(["fixed llm", f"fixed prompt {n}"])
    fixed.write_text("".join(json.dumps(r) + "\n" for r in records))
    replayed = bundle("migrate.py", "--replay", str(fixed), "--quiet", "--report", str(tmp_path / "r.json"))
    assert replayed.code == 0, replayed.err
    assert read_report(tmp_path / "r.json")["rows_written"] == len(records) == 6
    found = session.execute(
        f"SELECT body_blob FROM {qualified(keyspace, 'migrated')} WHERE key_desc = %s AND key_vals = %s",
        ('["llm_string","prompt"]', json.dumps(["fixed llm", "fixed prompt 0"], separators=(",", ":"))),
    ).one()
    assert found is not None and found.body_blob == "dirty"
    # The replayed rows have no source row of that key: verify finds them as extras (by looking the source up).
    v = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    assert v.code == 0 and read_report(tmp_path / "v.json")["extra"] == 6


def test_vector_table_into_one_partition_of_a_clustered_table(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "80", "-q").code == 0
    result = bundle("migrate.py", "--partition-id", "docs", "--quiet", "--report", str(tmp_path / "m.json"))
    assert result.code == 0, result.err
    assert read_report(tmp_path / "m.json")["rows_written"] == 80
    cols = columns_of(session, keyspace, "migrated")
    assert (cols["partition_id"][:2], cols["row_id"][:2]) == (("partition_key", "text"), ("clustering", "uuid"))
    app = ClusteredMetadataVectorCassandraTable(
        session=session,
        keyspace=keyspace,
        table="migrated",
        vector_dimension=16,
        primary_key_type=["TEXT", "UUID"],
        partition_id="docs",
    )
    source = rows(session, keyspace, "legacy", "document_id, document, metadata_blob")
    for r in source[:10]:
        got = app.get(row_id=r.document_id)
        assert got is not None and got["body_blob"] == r.document
        assert got["metadata"] == {k: app._coerce_string(v) for k, v in json.loads(r.metadata_blob).items()}
    assert len(list(app.get_partition(n=1000))) == 80
    assert len(list(app.metric_ann_search([0.25] * 16, n=5, metric="cos"))) == 5
    verified = bundle(
        "migrate.py", "--verify", "--partition-id", "docs", "--quiet", "--report", str(tmp_path / "v.json")
    )
    assert verified.code == 0 and read_report(tmp_path / "v.json")["matching"] == 80


def test_vector_table_partitioned_by_a_metadata_field_with_an_allow_list(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "200", "-q").code == 0
    env = {"TARGET_PARTITION_FIELD": "source", "METADATA_INDEXING": "allow:source,page"}
    result = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "m.json"), **env)
    data = read_report(tmp_path / "m.json")
    source = rows(session, keyspace, "legacy", "document_id, metadata_blob")
    lacking = [r for r in source if "source" not in json.loads(r.metadata_blob)]
    assert lacking  # the seed leaves some metadata empty
    assert (result.code, data["rows_rejected"], data["rows_written"]) == (1, len(lacking), 200 - len(lacking))
    rejects = [json.loads(line) for line in Path(data["rejects_file"]).read_text().splitlines()]
    assert {r["reason"] for r in rejects} == {"partition_field_missing"}

    target = rows(session, keyspace, "migrated", "partition_id, row_id, metadata_s, attributes_blob")
    by_key = {str(r.document_id): json.loads(r.metadata_blob) for r in source}
    for r in target:
        metadata = by_key[str(r.row_id)]
        assert r.partition_id == metadata["source"]
        assert set(r.metadata_s or {}) == {"source", "page"} & set(metadata)  # only the allowed keys are indexed
        assert set(json.loads(r.attributes_blob or "{}")) == set(metadata) - {"source", "page"}
    assert len({r.partition_id for r in target}) > 1

    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"), **env)
    v = read_report(tmp_path / "v.json")
    assert verified.code == 0 and (v["matching"], v["rejected"]) == (200 - len(lacking), len(lacking))


@pytest.mark.parametrize(
    ("kind", "flag", "message"),
    [
        ("history", "--partition-id=x", "TARGET_PARTITION_ID and TARGET_PARTITION_FIELD are for vector tables"),
        ("kvcache", "--key-type=text", "TARGET_KEY_TYPE, TARGET_PARTITION_ID"),
    ],
)
def test_vector_only_options_are_refused_for_other_kinds(bundle, kind: str, flag: str, message: str) -> None:
    assert bundle("create.py", "--kind", kind, "--rows", "3", "-q").code == 0
    result = bundle("migrate.py", flag)
    assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1


def test_create_refuses_to_seed_another_kind_into_an_existing_table(bundle) -> None:
    assert bundle("create.py", "--kind", "history", "--rows", "3", "-q").code == 0
    again = bundle("create.py", "--kind", "kvcache", "--rows", "3", "-q", "--append")
    assert again.code == 2
    assert "already exists as a legacy cassio chat history table" in again.err


def test_llm_cache_run_stopped_by_the_error_budget_resumes(bundle, keyspace: str, tmp_path: Path) -> None:
    """A stopped run of another kind resumes like the vector path: done ranges skipped, the rest copied."""
    assert bundle("create.py", "--kind", "kvcache", "--rows", "400", "--dirty", "-q").code == 0
    stopped = bundle("migrate.py", "--max-errors", "0", "--quiet", "--splits", "64")
    assert stopped.code == 3 and "error budget spent" in stopped.err, stopped.err
    resumed = bundle("migrate.py", "--splits", "64", "--report", str(tmp_path / "r.json"))
    assert resumed.code == 1, resumed.err
    assert "resuming" in resumed.out
    data = read_report(tmp_path / "r.json")
    assert data["resumed"] is True and data["ranges_skipped"] > 0 and data["rows_read"] < 400
    verified = bundle("migrate.py", "--verify", "--quiet", "--report", str(tmp_path / "v.json"))
    v = read_report(tmp_path / "v.json")
    assert verified.code == 0 and (v["matching"], v["missing"], v["rejected"]) == (400, 0, 6)
