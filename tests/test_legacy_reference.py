"""create.py's table is the one cassio 0.0.7 (and 0.0.6) creates: checked against the real packages.

cassio 0.0.x and 0.1.x cannot be installed side by side, so the old package is installed
into a folder of its own (pure Python, no dependencies needed beyond the driver we have)
and run in a subprocess with that folder first on its path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cassandra.cluster import Session

from tests.helpers import PORT, schema
from tests.old_packages import OldPackages, run_old

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def old_cassio(old_packages: OldPackages) -> dict[str, Path]:
    return {version: old_packages.cassio(version) for version in ("0.0.7", "0.0.6")}


@pytest.mark.parametrize(
    ("version", "key_type", "old_args"),
    [
        ("0.0.7", "uuid", "primary_key_type='UUID'"),
        ("0.0.7", "text", "primary_key_type='TEXT'"),
        ("0.0.6", "autoid", "auto_id=True"),
    ],
)
def test_create_py_makes_the_same_table_as_old_cassio(
    bundle, session: Session, keyspace: str, old_cassio, version: str, key_type: str, old_args: str
) -> None:
    run_old(
        old_cassio[version],
        f"""
        import cassio.vector
        from cassandra.cluster import Cluster
        session = Cluster(["127.0.0.1"], port={PORT}).connect()
        cassio.vector.VectorTable(session, "{keyspace}", "reference", embedding_dimension=16, {old_args})
    """,
    )
    assert bundle("create.py", "--rows", "3", "--key-type", key_type, "--quiet").code == 0
    ours = schema(session, keyspace, "legacy")
    theirs = schema(session, keyspace, "reference")
    assert ours == theirs
    assert ours[1][0][0] == "{table}_embedding_idx"


def test_rows_written_by_cassio_007_migrate_and_read_back_the_same(
    bundle, session: Session, keyspace: str, old_cassio
) -> None:
    metadatas = [{"a": 1, "b": "x"}, {"nested": {"k": [1, 2]}, "flag": False, "none": None}, {}]
    run_old(
        old_cassio["0.0.7"],
        f"""
        import uuid, cassio.vector
        from cassandra.cluster import Cluster
        session = Cluster(["127.0.0.1"], port={PORT}).connect()
        t = cassio.vector.VectorTable(session, "{keyspace}", "legacy", embedding_dimension=16, primary_key_type="UUID")
        for i, md in enumerate({metadatas!r}):
            t.put(f"document {{i}}", [0.1 * (i + 1)] * 16, uuid.UUID(int=i + 1), md, 3600 if i == 0 else None)
    """,
    )
    assert bundle("migrate.py", "--quiet").code == 0
    assert bundle("migrate.py", "--verify", "--quiet").code == 0
    from cassio.vector import VectorTable  # 0.1.x, as the application will use it

    app = VectorTable(
        session=session, keyspace=keyspace, table="migrated", embedding_dimension=16, primary_key_type="UUID"
    )
    import uuid

    for i, md in enumerate(metadatas):
        row = app.get(document_id=uuid.UUID(int=i + 1))
        assert row is not None
        assert row["document"] == f"document {i}"
        assert row["metadata"] == {k: app.table._coerce_string(v) for k, v in md.items()}
        assert row["embedding_vector"] == pytest.approx([0.1 * (i + 1)] * 16)


@pytest.mark.parametrize(
    ("kind", "old_class"),
    [
        ("history", "cassio.history.StoredBlobHistory(session, '{ks}', 'reference')"),
        ("kvcache", "cassio.keyvalue.KVCache(session, '{ks}', 'reference', ['llm_string', 'prompt'])"),
    ],
)
def test_create_py_makes_the_same_history_and_cache_tables_as_old_cassio(
    bundle, session: Session, keyspace: str, old_cassio, kind: str, old_class: str
) -> None:
    run_old(
        old_cassio["0.0.7"],
        f"""
        import cassio.history, cassio.keyvalue
        from cassandra.cluster import Cluster
        session = Cluster(["127.0.0.1"], port={PORT}).connect()
        {old_class.format(ks=keyspace)}
    """,
    )
    assert bundle("create.py", "--kind", kind, "--rows", "3", "--quiet").code == 0
    assert schema(session, keyspace, "legacy") == schema(session, keyspace, "reference")


def test_history_and_cache_written_by_cassio_007_read_back_the_same_through_0_1(
    bundle, session: Session, keyspace: str, old_cassio
) -> None:
    """0.0.7's StoredBlobHistory and KVCache write; after the migration, the 0.1.x classes read what 0.0.7 read."""
    sessions = {"alice": ["hi", 'say "cheese"', "é ✓ 🚀"], "bob": ['{"type": "human", "data": {}}']}
    cache = {("model=a", "What's 2+2?"): "4", ("model=b", 'quote " and \\ backslash\nnewline'): "ok"}
    old_reads = json.loads(
        run_old(
            old_cassio["0.0.7"],
            f"""
            import json, cassio.history, cassio.keyvalue
            from cassandra.cluster import Cluster
            session = Cluster(["127.0.0.1"], port={PORT}).connect()
            history = cassio.history.StoredBlobHistory(session, "{keyspace}", "history")
            for session_id, blobs in {sessions!r}.items():
                for n, blob in enumerate(blobs):
                    history.store(session_id, blob, 3600 if n == 0 else None)
            kv = cassio.keyvalue.KVCache(session, "{keyspace}", "cache", ["llm_string", "prompt"])
            for (llm, prompt), value in {cache!r}.items():
                kv.put({{"llm_string": llm, "prompt": prompt}}, value, None)
            print(json.dumps({{
                "history": {{s: list(history.retrieve(s)) for s in {list(sessions)!r}}},
                "cache": [kv.get({{"llm_string": llm, "prompt": prompt}}) for llm, prompt in {list(cache)!r}],
            }}))
        """,
        )
    )
    assert old_reads["history"] == sessions and old_reads["cache"] == list(cache.values())
    for source, target in (("history", "history_v1"), ("cache", "cache_v1")):
        assert bundle("migrate.py", "--quiet", OLD_TABLE=source, TARGET_TABLE=target).code == 0
        assert bundle("migrate.py", "--verify", "--quiet", OLD_TABLE=source, TARGET_TABLE=target).code == 0

    import warnings

    from cassio.history import StoredBlobHistory  # 0.1.x
    from cassio.table.tables import ElasticCassandraTable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history = StoredBlobHistory(session, keyspace, "history_v1")
    assert {s: list(history.retrieve(s)) for s in sessions} == old_reads["history"]
    kv = ElasticCassandraTable(
        session=session,
        keyspace=keyspace,
        table="cache_v1",
        keys=["llm_string", "prompt"],
        primary_key_type=["TEXT"] * 2,
    )
    new_reads = []
    for llm, prompt in cache:
        row = kv.get(llm_string=llm, prompt=prompt)
        new_reads.append(row["body_blob"] if row else None)
    assert new_reads == old_reads["cache"]
