"""--for langchain|llamaindex|cassio offline: the presets, the rows a framework cannot read, the
detection of a framework's table, and the handoff (how to open the result)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from cassio.table.cql import MockDBSession

from cassio_migration.errors import EXIT_USAGE, SchemaError, UsageError
from cassio_migration.frameworks import (
    LLAMAINDEX_INDEXING,
    Detection,
    detect,
    detection_line,
    preset,
    row_problem,
)
from cassio_migration.handoff import open_with
from cassio_migration.job import Clusters, ConnectionSpec, Job, MetadataIndexing, Secret
from cassio_migration.legacy import HISTORY, KVCACHE, LegacyTable
from cassio_migration.report import MigrateSummary, VerifySummary
from cassio_migration.target import TargetSpec, table_arguments, target_spec
from cassio_migration.transform import Reject, transformer_for
from cassio_migration.verify import VerifyCounts

UUID_SOURCE = LegacyTable("ks", "legacy", "uuid", 16)
TEXT_SOURCE = LegacyTable("ks", "legacy", "text", 16)
HISTORY_SOURCE = LegacyTable("ks", "message_store", "text", 0, HISTORY)
KVCACHE_SOURCE = LegacyTable("ks", "llm_cache", "text", 0, KVCACHE)


def job(framework: str = "cassio", **given: Any) -> Job:
    """A job as settings.py builds it: `given` are the settings the user set."""
    return Job(Clusters(), "ks", "legacy", "migrated", target_framework=framework, explicit=frozenset(given), **given)


def target_of(j: Job, source: LegacyTable) -> TargetSpec:
    j = preset(j, source)
    return target_spec(source, j)


# --- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [UUID_SOURCE, TEXT_SOURCE, HISTORY_SOURCE, KVCACHE_SOURCE])
def test_cassio_preset_is_todays_behaviour(source: LegacyTable) -> None:
    j = job(metadata_indexing=MetadataIndexing("allow", ("a",)))
    assert preset(j, source) is j


def test_langchain_vector_target_is_what_its_store_opens() -> None:
    spec = target_of(job("langchain"), UUID_SOURCE)
    cls, arguments = table_arguments(spec)
    assert cls.__name__ == "MetadataVectorCassandraTable"
    assert arguments == {"primary_key_type": "TEXT", "vector_dimension": 16, "metadata_indexing": "all"}
    assert preset(job("langchain"), UUID_SOURCE).target_key_type == "text"  # UUID keys become str(uuid)
    assert preset(job("langchain"), TEXT_SOURCE).target_key_type == "same"  # text keys stay as they are
    assert target_of(job("langchain"), TEXT_SOURCE).key_type == "text"


def test_langchain_keeps_the_users_metadata_indexing() -> None:
    policy = MetadataIndexing("allow", ("lang",))
    assert target_of(job("langchain", metadata_indexing=policy), TEXT_SOURCE).metadata_indexing == policy


def test_an_explicit_key_type_text_is_kept() -> None:
    assert preset(job("langchain", target_key_type="text"), UUID_SOURCE).target_key_type == "text"


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_uuid_keys_kept_as_they_are_are_refused(framework: str) -> None:
    with pytest.raises(UsageError, match=f"--for {framework}: .*cannot use ks.legacy's uuid keys") as err:
        preset(job(framework, target_key_type="same"), UUID_SOURCE)
    assert err.value.exit_code == EXIT_USAGE
    assert "\n" not in str(err.value)
    # on text keys `same` is what the reader needs
    assert preset(job(framework, target_key_type="same"), TEXT_SOURCE).target_key_type == "same"


@pytest.mark.parametrize("given", [{"partition_id": "p"}, {"partition_field": "tenant"}])
def test_langchain_refuses_a_partition(given: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="--for langchain: LangChain's Cassandra vector store has no partition"):
        preset(job("langchain", **given), TEXT_SOURCE)


@pytest.mark.parametrize("source", [HISTORY_SOURCE, KVCACHE_SOURCE])
def test_langchain_history_and_cache_are_migrated_as_today(source: LegacyTable) -> None:
    j = job("langchain")
    assert preset(j, source) is j
    assert target_of(j, source) == target_spec(source, job())
    with pytest.raises(SchemaError, match="are for vector tables"):  # as without the preset
        target_of(job("langchain", target_key_type="text"), source)


def test_llamaindex_target_is_what_its_store_opens() -> None:
    spec = target_of(job("llamaindex"), UUID_SOURCE)
    cls, arguments = table_arguments(spec)
    assert cls.__name__ == "ClusteredMetadataVectorCassandraTable"
    assert arguments == {
        "partition_id": None,
        "primary_key_type": ["TEXT", "TEXT"],
        "vector_dimension": 16,
        "metadata_indexing": ("deny", ["_node_content"]),  # cassio's synonym of ("default_to_searchable", [...])
    }
    assert spec.partition_field == "ref_doc_id"
    assert target_of(job("llamaindex"), TEXT_SOURCE).key_type == "text"


def test_llamaindex_accepts_the_settings_it_would_set() -> None:
    given = job("llamaindex", partition_field="ref_doc_id", metadata_indexing=LLAMAINDEX_INDEXING)
    assert target_of(given, UUID_SOURCE) == target_of(job("llamaindex"), UUID_SOURCE)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"metadata_indexing": MetadataIndexing()},
            "fixes its metadata indexing .* not all: unset --metadata-indexing",
        ),
        ({"partition_field": "tenant"}, "partition of its ref_doc_id"),
        ({"partition_id": "docs"}, "partition of its ref_doc_id"),
    ],
)
def test_llamaindex_refuses_another_layout(given: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=f"--for llamaindex: .*{message}"):
        preset(job("llamaindex", **given), TEXT_SOURCE)


@pytest.mark.parametrize("source", [HISTORY_SOURCE, KVCACHE_SOURCE])
def test_llamaindex_refuses_other_kinds(source: LegacyTable) -> None:
    with pytest.raises(UsageError, match=r"--for llamaindex: .* LlamaIndex reads only vector tables") as err:
        preset(job("llamaindex"), source)
    assert "\n" not in str(err.value)


def test_the_framework_is_carried_to_the_job_context() -> None:
    from cassio_migration.workflow import job_context

    j = preset(job("llamaindex"), TEXT_SOURCE)
    assert job_context(j, TEXT_SOURCE, target_spec(TEXT_SOURCE, j))["framework"] == "llamaindex"
    assert "framework" not in job_context(job(), TEXT_SOURCE, target_spec(TEXT_SOURCE, job()))  # as before


# --- rows the framework's reader cannot take ------------------------------------------------------

NODE = {"_node_content": json.dumps({"id_": "n1", "text": ""}), "ref_doc_id": "doc-a", "page": 1}


@pytest.mark.parametrize(
    ("framework", "document", "metadata", "reason"),
    [
        ("cassio", None, {}, None),
        ("langchain", "text", {}, None),
        ("langchain", None, {}, "document_null"),
        ("llamaindex", None, NODE, "document_null"),
        ("llamaindex", "text", NODE, None),
        ("llamaindex", "text", {"ref_doc_id": "doc-a"}, "node_content_missing"),
        ("llamaindex", "text", {**NODE, "_node_content": 3}, "node_content_missing"),
        ("llamaindex", "text", {**NODE, "_node_content": "not json"}, "node_content_malformed"),
        ("llamaindex", "text", {**NODE, "_node_content": "[1]"}, "node_content_malformed"),
    ],
)
def test_row_problems(framework: str, document: str | None, metadata: dict[str, Any], reason: str | None) -> None:
    found = row_problem(framework, document, metadata)
    assert (found and found[0]) == reason


def transformer(framework: str, source: LegacyTable = UUID_SOURCE) -> Any:
    j = preset(job(framework), source)
    return transformer_for(target_spec(source, j), MockDBSession(), j)


def test_the_transformer_rejects_what_the_reader_cannot_take() -> None:
    key = uuid.uuid4()
    tr = transformer("llamaindex")
    assert tr.values(key, b"v", None, json.dumps(NODE)) == Reject(
        "document_null", "document is NULL: LlamaIndex's reader fails on a row without text"
    )
    assert tr.values(key, b"v", "t", json.dumps({"ref_doc_id": "d"})).reason == "node_content_missing"
    assert tr.values(key, b"v", "t", json.dumps({"page": 1})).reason == "partition_field_missing"
    row = dict(zip(tr.columns, tr.values(key, b"v", "t", json.dumps(NODE))))
    assert (row["partition_id"], row["row_id"]) == ("doc-a", str(key))
    assert row["metadata_s"] == {"ref_doc_id": "doc-a", "page": "1.0"}  # _node_content stays out of the index
    assert json.loads(row["attributes_blob"]) == {"_node_content": NODE["_node_content"]}
    assert transformer("langchain").values(key, b"v", None, "{}").reason == "document_null"
    assert not isinstance(transformer("cassio").values(key, b"v", None, "{}"), Reject)  # as before


# --- detection ------------------------------------------------------------------------------------


def vector_rows(n: int, **row: Any) -> list[dict[str, Any]]:
    return [{"document_id": uuid.uuid4().hex, "document": f"d{i}", "metadata_blob": "{}", **row} for i in range(n)]


def test_llamaindex_nodes_are_detected() -> None:
    rows = vector_rows(3, metadata_blob=json.dumps(NODE)) + vector_rows(1)
    assert detect(TEXT_SOURCE, rows) == Detection(
        "llamaindex", "metadata with _node_content and ref_doc_id in 3 of 4 sampled rows"
    )
    assert detect(UUID_SOURCE, [{**r, "document_id": uuid.uuid4()} for r in rows]).framework == "llamaindex"


def test_langchain_vector_ids_are_detected() -> None:
    assert detect(TEXT_SOURCE, vector_rows(4)) == Detection(
        "langchain", "text ids of 32 hex digits, as LangChain made them, in 4 of 4 sampled rows"
    )
    assert detect(TEXT_SOURCE, [{**r, "document_id": f"doc-{i}"} for i, r in enumerate(vector_rows(4))]) is None
    assert detect(UUID_SOURCE, [{**r, "document_id": uuid.uuid4()} for r in vector_rows(4)]) is None  # cassio's own


def test_a_minority_is_no_sign() -> None:
    rows = vector_rows(1, metadata_blob=json.dumps(NODE)) + [{**r, "document_id": "x"} for r in vector_rows(3)]
    assert detect(TEXT_SOURCE, rows) is None
    assert detect(TEXT_SOURCE, []) is None


def test_langchain_history_and_cache_are_detected() -> None:
    message = json.dumps({"type": "human", "data": {"content": "hi", "additional_kwargs": {}}})
    history = LegacyTable("ks", "chats", "text", 0, HISTORY)
    assert detect(history, [{"session_id": "s", "blob": message}]).framework == "langchain"
    assert detect(history, [{"session_id": "s", "blob": "plain text"}]) is None
    assert detect(HISTORY_SOURCE, []) == Detection("langchain", "LangChain's default table name 'message_store'")
    md5 = "0" * 32
    cache = LegacyTable("ks", "cache", "text", 0, KVCACHE)
    rows = [{"key_desc": "llm_string/prompt", "cache_key": str([md5, md5]), "cache_value": "[]"}]
    assert detect(cache, rows) == Detection("langchain", "keys llm_string/prompt in 1 of 1 sampled rows")
    plain = [{**rows[0], "cache_key": str(["model", "a prompt"])}]
    assert "not md5 hashes" in detect(cache, plain).evidence
    assert detect(cache, [{**rows[0], "key_desc": "a/b"}]) is None
    assert detect(LegacyTable("ks", "langchain_llm_cache", "text", 0, KVCACHE), []).framework == "langchain"


def test_detection_lines_name_the_preset_and_never_switch() -> None:
    found = Detection("llamaindex", "evidence")
    line = detection_line(TEXT_SOURCE, found, "cassio")
    assert line == (
        "source ks.legacy looks like a LlamaIndex table (evidence): use --for llamaindex (the layout LlamaIndex's"
        " reader opens); this run goes on with --for cassio"
    )
    assert detection_line(TEXT_SOURCE, found, "llamaindex").endswith(": --for llamaindex fits")
    assert "the same table, and how LangChain opens it" in detection_line(
        HISTORY_SOURCE, Detection("langchain", "e"), "cassio"
    )
    assert "rows without them are rejected" in detection_line(TEXT_SOURCE, None, "llamaindex")
    assert detection_line(TEXT_SOURCE, None, "cassio") is None
    assert detection_line(TEXT_SOURCE, None, "langchain") is None


# --- handoff --------------------------------------------------------------------------------------

CASES = [
    ("cassio", UUID_SOURCE, "cassio.table.MetadataVectorCassandraTable"),
    ("cassio", HISTORY_SOURCE, "cassio.table.ClusteredCassandraTable"),
    ("cassio", KVCACHE_SOURCE, "cassio.table.ElasticCassandraTable"),
    ("langchain", UUID_SOURCE, "langchain_community.vectorstores.Cassandra"),
    ("langchain", HISTORY_SOURCE, "langchain_community.chat_message_histories.CassandraChatMessageHistory"),
    ("langchain", KVCACHE_SOURCE, "langchain_community.cache.CassandraCache"),
    ("llamaindex", UUID_SOURCE, "llama_index.vector_stores.cassandra.CassandraVectorStore"),
]


@pytest.mark.parametrize(("framework", "source", "cls"), CASES)
def test_handoff_names_the_class_and_its_arguments(framework: str, source: LegacyTable, cls: str) -> None:
    j = preset(job(framework), source)
    found = open_with(j, target_spec(source, j))
    assert found["framework"] == framework and found["class"] == cls
    code = found["code"]
    compile(code, "open_with", "exec")  # lines to paste: valid Python
    assert f"import {cls.rsplit('.', 1)[1]}" in code
    assert 'session = Cluster(["127.0.0.1"], port=9042).connect()' in code
    assert '"ks"' in code and '"migrated"' in code
    if source.kind == "vector":
        assert "16" in code  # the dimension
    if framework == "langchain":
        assert "setup_mode=SetupMode.OFF" in code and found["arguments"]["table_name"] == "migrated"
    json.dumps(found)  # goes into the JSON report as it is


def test_cassio_handoff_has_the_arguments_the_table_was_created_with() -> None:
    j = job(partition_field="tenant", metadata_indexing=MetadataIndexing("deny", ("big",)))
    spec = target_spec(UUID_SOURCE, j)
    arguments = open_with(j, spec)["arguments"]
    assert arguments == {
        "keyspace": "ks",
        "table": "migrated",
        **table_arguments(spec)[1],
        "skip_provisioning": True,
    }


def test_langchain_handoff_passes_a_metadata_indexing_that_is_not_all() -> None:
    j = preset(job("langchain", metadata_indexing=MetadataIndexing("allow", ("lang", "source"))), TEXT_SOURCE)
    found = open_with(j, target_spec(TEXT_SOURCE, j))
    assert found["arguments"]["metadata_indexing"] == ("allowlist", ["lang", "source"])
    assert 'metadata_indexing=("allowlist", ["lang", "source"]),' in found["code"]
    assert (
        "metadata_indexing"
        not in open_with(preset(job("langchain"), TEXT_SOURCE), target_of(job("langchain"), TEXT_SOURCE))["code"]
    )


def test_handoff_connects_where_the_target_is_without_secrets() -> None:
    spec = target_spec(TEXT_SOURCE, job())
    plain = ConnectionSpec(("10.0.0.1", "10.0.0.2"), 9043, "app", Secret("pw-xyzzy"), tls_ca_file="/ca.pem")
    code = open_with(replace(job(), clusters=Clusters(plain)), spec)["code"]
    assert 'Cluster(["10.0.0.1", "10.0.0.2"], port=9043, auth_provider=PlainTextAuthProvider("app",' in code
    assert 'os.environ["CASSANDRA_PASSWORD"]' in code and "/ca.pem" in code and "xyzzy" not in code
    astra = ConnectionSpec(astra_token=Secret("AstraCS:tok"), astra_db_id="db-1", prefix="TARGET_")
    code = open_with(replace(job(), clusters=Clusters(plain, astra)), spec)["code"]
    assert 'cassio.init(token=os.environ["ASTRA_DB_APPLICATION_TOKEN"], database_id="db-1")' in code
    assert "AstraCS:tok" not in code and "10.0.0.1" not in code
    compile(code, "open_with", "exec")


def test_handoff_is_printed_and_reported_after_a_finished_copy_only() -> None:
    j = preset(job("llamaindex"), TEXT_SOURCE)
    handoff = open_with(j, target_spec(TEXT_SOURCE, j))
    for status, dry_run, shown in [
        ("done", False, True),
        ("done_with_rejects", False, True),
        ("stopped", False, False),
        ("done", True, False),
    ]:
        summary = MigrateSummary(status, "ks.legacy", "ks.migrated", dry_run=dry_run, open_with=handoff)
        assert (summary.as_dict()["open_with"] == handoff) is shown
        lines = summary.lines()
        assert (
            "open the result with llama_index.vector_stores.cassandra.CassandraVectorStore (--for llamaindex):" in lines
        ) is shown
        assert ("    store = CassandraVectorStore(" in lines) is shown
    clean = VerifySummary("ks.legacy", "ks.migrated", VerifyCounts(), open_with=handoff)
    assert clean.as_dict()["open_with"] == handoff and "CassandraVectorStore(" in clean.lines()
    dirty = VerifySummary("ks.legacy", "ks.migrated", VerifyCounts(), open_with=handoff)
    dirty.counts.counts["missing"] = 1
    assert dirty.as_dict()["open_with"] is None and "CassandraVectorStore(" not in dirty.lines()
