"""cassio_migration/transform.py against cassio's own table object, built offline (MockDBSession)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cassio.table.cql import MockDBSession
from cassio.table.mixins.metadata import MetadataMixin
from cassio.table.tables import MetadataVectorCassandraTable

from cassio_migration.job import Clusters, Job
from cassio_migration.target import TargetSpec
from cassio_migration.transform import KVCacheTransformer, Reject, VectorTransformer, transformer_for

KEY = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")
VECTOR = [0.6, 0.0, 0.8]


def make_table(metadata_indexing: Any = "all", key_type: str = "UUID") -> MetadataVectorCassandraTable:
    return MetadataVectorCassandraTable(
        session=MockDBSession(),
        keyspace="ks",
        table="t",
        vector_dimension=3,
        primary_key_type=key_type,
        metadata_indexing=metadata_indexing,
        skip_provisioning=True,
    )


@pytest.fixture
def table() -> MetadataVectorCassandraTable:
    return make_table()


@pytest.fixture
def tr(table) -> VectorTransformer:
    return VectorTransformer(table)


def row_of(tr: VectorTransformer, values: tuple[Any, ...]) -> dict[str, Any]:
    assert not isinstance(values, Reject), values
    assert len(values) == len(tr.columns)
    return dict(zip(tr.columns, values))


# --- columns ------------------------------------------------------------------------------------


def test_columns_are_the_cassio_columns_in_cassio_order(table, tr):
    assert set(tr.columns) == {"row_id", "body_blob", "vector", "attributes_blob", "metadata_s"}
    cassio_order = [name for name, _ in table._schema_collist()]
    assert list(tr.columns) == [c for c in cassio_order if c in tr.columns]
    assert isinstance(tr.columns, tuple)


def test_columns_are_what_cassio_put_writes(table, tr):
    """cassio's put writes the columns of _normalize_kwargs, in _schema_collist order."""
    normalized = table._normalize_kwargs(
        {"row_id": KEY, "body_blob": "d", "vector": VECTOR, "metadata": {"a": 1}}, is_write=True
    )
    assert tr.columns == tuple(c for c, _ in table._schema_collist() if c in normalized)


# --- metadata rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("blob", [None, "", "null", " null "])
def test_no_metadata_gives_empty_dict(tr, blob):
    assert tr.metadata(blob) == {}
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", blob))
    assert row["metadata_s"] == {}
    assert row["attributes_blob"] is None
    assert tr.as_read(row)["metadata"] == {}


@pytest.mark.parametrize("blob", [None, "", "null"])
def test_no_metadata_ignores_wrap_key(table, blob):
    assert VectorTransformer(table, wrap_key="legacy").metadata(blob) == {}


def test_object_metadata_is_the_metadata(tr):
    blob = '{"source": "wiki", "page": 3, "nested": {"a": [1, 2]}, "ключ": "значение"}'
    assert tr.metadata(blob) == {"source": "wiki", "page": 3, "nested": {"a": [1, 2]}, "ключ": "значение"}
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", blob))
    assert row["metadata_s"] == {
        "source": "wiki",
        "page": "3.0",
        "nested": str({"a": [1, 2]}),
        "ключ": "значение",
    }


@pytest.mark.parametrize(
    ("blob", "value"),
    [
        ("[1, 2, 3]", [1, 2, 3]),
        ("[]", []),
        ("42", 42),
        ("-1.5", -1.5),
        ('"just text"', "just text"),
        ('""', ""),
        ("true", True),
        ("false", False),
    ],
)
def test_non_object_json_is_rejected(tr, blob, value):
    result = tr.metadata(blob)
    assert isinstance(result, Reject)
    assert result.reason == "metadata_not_object"
    assert type(value).__name__ in result.detail
    rejected = tr.values(KEY, VECTOR, "doc", blob)
    assert isinstance(rejected, Reject) and rejected.reason == "metadata_not_object"


@pytest.mark.parametrize(
    ("blob", "value"),
    [
        ("[1, 2, 3]", [1, 2, 3]),
        ("42", 42),
        ('"just text"', "just text"),
        ("true", True),
        ("false", False),
    ],
)
def test_non_object_json_with_wrap_key_is_wrapped(table, blob, value):
    tr = VectorTransformer(table, wrap_key="legacy")
    assert tr.metadata(blob) == {"legacy": value}
    assert type(tr.metadata(blob)["legacy"]) is type(value)
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", blob))
    assert row["metadata_s"] == {"legacy": MetadataMixin._coerce_string(value)}


@pytest.mark.parametrize("blob", ['{"source": "broken', "{'single': 'quotes'}", "not json at all", "{]", "[1, 2"])
def test_malformed_json_is_rejected(tr, blob):
    result = tr.metadata(blob)
    assert isinstance(result, Reject)
    assert result.reason == "metadata_malformed_json"
    rejected = tr.values(KEY, VECTOR, "doc", blob)
    assert isinstance(rejected, Reject) and rejected.reason == "metadata_malformed_json"


@pytest.mark.parametrize("blob", ['{"source": "broken', "not json at all"])
def test_malformed_json_with_wrap_key_keeps_raw_text(table, blob):
    tr = VectorTransformer(table, wrap_key="raw")
    assert tr.metadata(blob) == {"raw": blob}
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", blob))
    assert row["metadata_s"] == {"raw": blob}
    assert tr.as_read(row)["metadata"] == {"raw": blob}


def test_wrap_key_does_not_touch_object_metadata(table):
    tr = VectorTransformer(table, wrap_key="legacy")
    assert tr.metadata('{"a": "b"}') == {"a": "b"}


@pytest.mark.parametrize("blob", ['{"n": ' + str(10**400) + "}", '{"n": -' + str(10**400) + "}"])
def test_huge_integer_metadata_is_unstorable(tr, blob):
    result = tr.values(KEY, VECTOR, "doc", blob)
    assert isinstance(result, Reject)
    assert result.reason == "metadata_unstorable"
    assert result.detail


def test_huge_integer_wrapped_is_unstorable(table):
    tr = VectorTransformer(table, wrap_key="legacy")
    result = tr.values(KEY, VECTOR, "doc", str(10**400))
    assert isinstance(result, Reject) and result.reason == "metadata_unstorable"


def test_largest_float_integer_is_storable(tr):
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", '{"n": ' + str(2**53) + "}"))
    assert row["metadata_s"] == {"n": json.dumps(float(2**53))}


# --- NULL document / vector ------------------------------------------------------------------------


def test_null_document_is_kept_as_none(tr):
    row = row_of(tr, tr.values(KEY, VECTOR, None, '{"a": "b"}'))
    assert row["body_blob"] is None
    assert row["vector"] == VECTOR
    assert row["row_id"] == KEY


def test_null_vector_is_kept_as_none(tr):
    row = row_of(tr, tr.values(KEY, None, "doc", '{"a": "b"}'))
    assert row["vector"] is None
    assert row["body_blob"] == "doc"


def test_both_null_kept(tr):
    row = row_of(tr, tr.values(KEY, None, None, None))
    assert row == {"row_id": KEY, "body_blob": None, "vector": None, "attributes_blob": None, "metadata_s": {}}


def test_empty_document_stays_empty(tr):
    row = row_of(tr, tr.values(KEY, VECTOR, "", None))
    assert row["body_blob"] == ""


def test_vector_bytes_pass_through(tr):
    raw = b"\x3f\x80\x00\x00" * 3
    row = row_of(tr, tr.values(KEY, raw, "doc", None))
    assert row["vector"] == raw


# --- coercion exactly as cassio's MetadataMixin._coerce_string -----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1.0"),
        (0, "0.0"),
        (-7, "-7.0"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (1.5, "1.5"),
        (1.5e-12, "1.5e-12"),
        ("text", "text"),
        ("", ""),
        ("Zürich 東京", "Zürich 東京"),
        ([1, "a", None], str([1, "a", None])),
        ([[1, 2], [3]], str([[1, 2], [3]])),
        ({"d": "é"}, str({"d": "é"})),
    ],
)
def test_metadata_values_coerced_as_cassio_does(tr, value, expected):
    assert MetadataMixin._coerce_string(value) == expected
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps({"k": value})))
    assert row["metadata_s"] == {"k": expected}
    assert tr.as_read(row)["metadata"] == {"k": expected}


def test_all_values_coerced_in_one_row(tr):
    md = {"i": 1, "b": True, "n": None, "f": 1.5, "l": [[1, 2], ["x"]], "s": "s"}
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(md)))
    assert row["metadata_s"] == {k: MetadataMixin._coerce_string(v) for k, v in md.items()}
    assert row["metadata_s"] == {"i": "1.0", "b": "true", "n": "null", "f": "1.5", "l": "[[1, 2], ['x']]", "s": "s"}


# --- indexing policy -----------------------------------------------------------------------------------


MD = {"a": 1, "b": "bee", "z": None, "m": [1, 2]}


def test_all_indexing_puts_everything_in_metadata_s(tr):
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(MD)))
    assert set(row["metadata_s"]) == set(MD)
    assert row["attributes_blob"] is None


def test_none_indexing_puts_everything_in_attributes_blob():
    tr = VectorTransformer(make_table("none"))
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(MD)))
    assert row["metadata_s"] == {}
    assert row["attributes_blob"] == '{"a":"1.0","b":"bee","m":"[1, 2]","z":"null"}'


def test_allow_indexing_splits_keys():
    tr = VectorTransformer(make_table(("allow", ["a", "b"])))
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(MD)))
    assert row["metadata_s"] == {"a": "1.0", "b": "bee"}
    # Compact, sorted JSON of the coerced values of the other keys.
    assert row["attributes_blob"] == '{"m":"[1, 2]","z":"null"}'
    assert row["attributes_blob"] == json.dumps({"z": "null", "m": "[1, 2]"}, separators=(",", ":"), sort_keys=True)
    assert tr.as_read(row)["metadata"] == {"a": "1.0", "b": "bee", "m": "[1, 2]", "z": "null"}


def test_deny_indexing_splits_keys():
    tr = VectorTransformer(make_table(("deny", ["a", "z"])))
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(MD)))
    assert row["metadata_s"] == {"b": "bee", "m": "[1, 2]"}
    assert row["attributes_blob"] == '{"a":"1.0","z":"null"}'


def test_allow_indexing_without_unindexed_keys_gives_null_blob():
    tr = VectorTransformer(make_table(("allow", ["a"])))
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", '{"a": 2}'))
    assert row["metadata_s"] == {"a": "2.0"}
    assert row["attributes_blob"] is None


def test_columns_same_for_every_indexing_policy():
    expected = VectorTransformer(make_table()).columns
    for policy in ("none", ("allow", ["a"]), ("deny", ["a"])):
        assert VectorTransformer(make_table(policy)).columns == expected


def test_non_ascii_keys_in_attributes_blob_are_escaped_json():
    tr = VectorTransformer(make_table("none"))
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", '{"ключ": "значение"}'))
    assert json.loads(row["attributes_blob"]) == {"ключ": "значение"}
    assert tr.as_read(row)["metadata"] == {"ключ": "значение"}


# --- keys ------------------------------------------------------------------------------------------


def test_key_kept_by_default(tr):
    assert tr.key_of(KEY) is KEY
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", None))
    assert row["row_id"] == KEY and isinstance(row["row_id"], uuid.UUID)


def test_key_to_text_turns_uuid_into_its_string():
    tr = VectorTransformer(make_table(key_type="TEXT"), key_to_text=True)
    assert tr.key_of(KEY) == str(KEY) == "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", None))
    assert row["row_id"] == str(KEY)
    assert isinstance(row["row_id"], str)


def test_text_key_kept_as_text():
    tr = VectorTransformer(make_table(key_type="TEXT"))
    row = row_of(tr, tr.values("abc123", VECTOR, "doc", None))
    assert row["row_id"] == "abc123"


# --- as cassio reads it ---------------------------------------------------------------------------


def test_as_read_gives_back_the_row_as_cassio_reads_it(tr):
    blob = '{"source": "wiki", "page": 3, "ok": true, "none": null}'
    values = tr.values(KEY, VECTOR, "the document", blob)
    read = tr.as_read(dict(zip(tr.columns, values)))
    assert set(read) == {"row_id", "body_blob", "vector", "metadata"}
    assert read == {
        "row_id": KEY,
        "body_blob": "the document",
        "vector": VECTOR,
        "metadata": {"source": "wiki", "page": "3.0", "ok": "true", "none": "null"},
    }


def test_as_read_with_split_metadata_merges_both_parts():
    tr = VectorTransformer(make_table(("allow", ["source"])))
    values = tr.values(KEY, None, None, '{"source": "pdf", "page": 2}')
    read = tr.as_read(dict(zip(tr.columns, values)))
    assert read == {"row_id": KEY, "body_blob": None, "vector": None, "metadata": {"source": "pdf", "page": "2.0"}}


def test_as_read_of_null_metadata_columns(tr):
    read = tr.as_read({"row_id": KEY, "body_blob": "d", "vector": None, "attributes_blob": None, "metadata_s": None})
    assert read == {"row_id": KEY, "body_blob": "d", "vector": None, "metadata": {}}


# --- the other legacy kinds, and clustered vector targets ---------------------------------------------


def spec_of(kind: str, **kwargs: Any) -> TargetSpec:
    return TargetSpec("ks", "t", kwargs.pop("key_type", "uuid"), 3, kind=kind, **kwargs)


def test_history_row_keeps_session_blob_id_and_blob() -> None:
    tr = transformer_for(spec_of("history"), MockDBSession())
    blob_id = uuid.uuid1()
    row = dict(zip(tr.columns, tr.values("s1", blob_id, '{"type": "human"}')))
    assert row == {"partition_id": "s1", "row_id": blob_id, "body_blob": '{"type": "human"}'}
    assert (tr.key, tr.partition_key, tr.same_order) == (("partition_id", "row_id"), ("partition_id",), True)


@pytest.mark.parametrize(
    ("key_desc", "values"),
    [
        ("llm_string/prompt", ["[('_type', 'openai')]", 'say "hi"\n\\ it\'s é']),
        ("one", ["x"]),
        ("a/b/c", ["1", "", "✓"]),
    ],
)
def test_kvcache_keys_become_what_cassio_0_1_writes_and_map_back(key_desc: str, values: list[str]) -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    out = tr.values(key_desc, str(values), "cached")
    assert not isinstance(out, Reject)
    row = dict(zip(tr.columns, out))
    names = key_desc.split("/")
    assert row == {
        "key_desc": json.dumps(names, separators=(",", ":")),
        "key_vals": json.dumps(values, separators=(",", ":")),
        "body_blob": "cached",
    }
    assert tr.source_key((row["key_desc"], row["key_vals"])) == (key_desc, str(values))  # verify's way back
    assert tr.same_order is False


@pytest.mark.parametrize("cache_key", ["not a list", "['one']", "['a', 'b', 'c']", "{'a': 1}", "[unclosed", ""])
def test_kvcache_malformed_keys_are_rejected(cache_key: str) -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    out = tr.values("llm_string/prompt", cache_key, "v")
    assert isinstance(out, Reject) and out.reason == "cache_key_malformed"


def test_kvcache_key_desc_naming_a_key_twice_is_rejected() -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    out = tr.values("a/a", "['1', '2']", "v")
    assert isinstance(out, Reject) and out.reason == "cache_key_malformed" and "twice" in out.detail


def test_kvcache_target_rows_of_other_writers_map_to_no_source() -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    assert tr.source_key(("not json", "[]")) is None


def test_constant_partition_goes_to_every_row() -> None:
    tr = transformer_for(spec_of("vector", partition_id="docs"), MockDBSession())
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", '{"a": 1}'))
    assert (row["partition_id"], row["row_id"]) == ("docs", KEY)
    assert tr.key == ("partition_id", "row_id") and tr.same_order is False
    assert tr.source_key(("docs", KEY)) == (KEY,)


@pytest.mark.parametrize(
    ("metadata", "partition"),
    [({"tenant": "acme"}, "acme"), ({"tenant": 7}, "7"), ({"tenant": True}, "true"), ({"tenant": 1.5}, "1.5")],
)
def test_partition_from_a_metadata_field(metadata: dict[str, Any], partition: str) -> None:
    tr = transformer_for(spec_of("vector", partition_field="tenant"), MockDBSession())
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", json.dumps(metadata)))
    assert row["partition_id"] == partition
    assert tr.as_read(row)["metadata"]["tenant"]  # the field stays in the metadata too


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        ("{}", "partition_field_missing"),
        ('{"tenant": null}', "partition_field_missing"),
        ('{"tenant": [1]}', "partition_field_not_scalar"),
        ('{"tenant": {"a": 1}}', "partition_field_not_scalar"),
    ],
)
def test_rows_without_a_usable_partition_field_are_rejected(blob: str, reason: str) -> None:
    tr = transformer_for(spec_of("vector", partition_field="tenant"), MockDBSession())
    out = tr.values(KEY, VECTOR, "doc", blob)
    assert isinstance(out, Reject) and out.reason == reason


def test_clustered_key_to_text_maps_back_to_uuids() -> None:
    job = Job(Clusters(), "ks", "old", "t", target_key_type="text")
    tr = transformer_for(spec_of("vector", key_type="text", partition_id="p"), MockDBSession(), job)
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", None))
    assert row["row_id"] == str(KEY)
    assert tr.source_key(("p", str(KEY))) == (KEY,)
    assert tr.source_key(("p", "not-a-uuid")) is None


# --- what the mutation run found untested (docs/mutation.md) ------------------------------------


@pytest.mark.parametrize(
    ("cache_key", "reason", "detail"),
    [
        # Parsed, but str(list) gives other text: verify and --delete-extra could not find the source row back.
        ('["a", "b"]', "cache_key_not_canonical", "(\"['a', 'b']\" would be)"),
        ("['a' , 'b']", "cache_key_not_canonical", "(\"['a', 'b']\" would be)"),
        ("[1e999, 'x']", "cache_key_not_canonical", "(\"[inf, 'x']\" would be)"),
        ("('a', 'b')", "cache_key_malformed", "not a list of 2 values (one per name in key_desc)"),
        ("[1, 2", "cache_key_malformed", "not the str() of a list (SyntaxError)"),
        ("[{1}, 'x']", "cache_key_unstorable", "(TypeError: Object of type set is not JSON serializable)"),
        ("[b'x', 'y']", "cache_key_unstorable", "(TypeError: Object of type bytes is not JSON serializable)"),
    ],
)
def test_kvcache_keys_that_would_not_round_trip_are_rejected_with_the_form(
    cache_key: str, reason: str, detail: str
) -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    out = tr.values("p/q", cache_key, "v")
    assert out == Reject(reason, out.detail) and detail in out.detail  # type: ignore[union-attr]


def test_kvcache_keeps_one_cassio_table_per_key_desc() -> None:
    tr = transformer_for(spec_of("kvcache"), MockDBSession())
    assert isinstance(tr, KVCacheTransformer)
    first = tr._table_for("a/b")
    assert tr._table_for("a/b") is first and tr._table_for("a/c") is not first


@pytest.mark.parametrize("kind", ["vector", "history", "kvcache"])
def test_a_transformer_never_creates_tables(kind: str) -> None:
    # The target is created once, by create/migrate; a transformer is built in every worker.
    session = MockDBSession()
    tr = transformer_for(spec_of(kind), session)
    if kind == "kvcache":
        tr.values("p/q", "['a', 'b']", "v")
    assert session.statements == []


def test_reject_details_name_what_is_wrong() -> None:
    tr = transformer_for(spec_of("vector", partition_field="tenant"), MockDBSession())
    assert "metadata_blob is not JSON (" in tr.values(KEY, VECTOR, "doc", "{oops").detail  # type: ignore[union-attr]
    assert tr.values(KEY, VECTOR, "doc", "{}").detail == "metadata has no 'tenant' for the partition"  # type: ignore[union-attr]
    out = tr.values(KEY, VECTOR, "doc", '{"tenant": [1]}')
    assert out.detail == "metadata 'tenant' is a list, not text"  # type: ignore[union-attr]


def test_same_order_only_for_an_unclustered_target_keeping_the_key_type() -> None:
    # Verification merges the two scans by token only when the target row has the source row's token.
    assert transformer_for(spec_of("vector"), MockDBSession()).same_order is True
    job = Job(Clusters(), "ks", "old", "t", target_key_type="text")
    text = transformer_for(spec_of("vector", key_type="text"), MockDBSession(), job)
    assert text.same_order is False and text.source_key((str(KEY),)) == (KEY,)
    assert transformer_for(spec_of("vector"), MockDBSession()).source_key((KEY,)) == (KEY,)


def test_the_jobs_wrap_key_reaches_the_transformer() -> None:
    job = Job(Clusters(), "ks", "old", "t", metadata_wrap_key="legacy")
    tr = transformer_for(spec_of("vector"), MockDBSession(), job)
    row = row_of(tr, tr.values(KEY, VECTOR, "doc", "[1, 2]"))
    assert tr.as_read(row)["metadata"] == {"legacy": "[1, 2]"}  # cassio stores the list as its JSON text


def test_write_times_are_asked_of_every_value_column_but_collections() -> None:
    # WRITETIME() of a map (metadata_s) is an error on the node.
    timed = {k: transformer_for(spec_of(k), MockDBSession()).timed for k in ("vector", "history", "kvcache")}
    assert timed == {
        "vector": ("body_blob", "vector", "attributes_blob"),
        "history": ("body_blob",),
        "kvcache": ("body_blob",),
    }
