"""cassio_migration/seed.py: the fake legacy rows create.py writes (no database)."""

from __future__ import annotations

import ast
import json
import re
import uuid
from typing import Any

import numpy as np
import pytest

from cassio_migration.seed import (
    DIRTY_KINDS,
    FakeRow,
    SeedSpec,
    dirty_row_count,
    fake_cache_rows,
    fake_history_rows,
    fake_rows,
    unit_vectors,
)

ROWS = 400
DIM = 8
THIRTY_DAYS = 30 * 86_400


def rows_of(**kwargs: Any) -> list[FakeRow]:
    spec = SeedSpec(**{"rows": ROWS, "dimension": DIM, **kwargs})
    return list(fake_rows(spec))


@pytest.fixture(scope="module")
def clean_rows() -> list[FakeRow]:
    return rows_of()


def decode(vector: bytes) -> np.ndarray:
    return np.frombuffer(vector, dtype=">f4")


def walk(value: Any):
    """Every value inside a JSON value, the value itself included."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# --- reproducibility -----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows(clean_rows):
    again = rows_of()
    assert again == clean_rows
    assert len(clean_rows) == ROWS


def test_another_seed_gives_other_rows(clean_rows):
    other = rows_of(seed=7)
    assert len(other) == ROWS
    assert other != clean_rows
    assert not {r.document_id for r in other} & {r.document_id for r in clean_rows}
    assert all(a.vector != b.vector for a, b in zip(other, clean_rows))


def test_row_count_across_batches():
    spec = SeedSpec(rows=1030, dimension=2, seed=3)
    rows = list(fake_rows(spec))
    assert len(rows) == 1030
    assert rows == list(fake_rows(spec))
    assert list(fake_rows(SeedSpec(rows=0, dimension=2))) == []


def test_spec_defaults():
    spec = SeedSpec(rows=1, dimension=1)
    assert (spec.key_type, spec.dirty, spec.ttl_fraction, spec.seed, spec.append) == ("uuid", False, 0.0, 42, False)


# --- vectors --------------------------------------------------------------------------------------------


def test_vectors_are_big_endian_unit_vectors(clean_rows):
    for row in clean_rows:
        assert isinstance(row.vector, bytes)
        assert len(row.vector) == 4 * DIM
        v = decode(row.vector).astype(np.float64)
        assert v.shape == (DIM,)
        assert np.all(np.isfinite(v))
        assert abs(np.linalg.norm(v) - 1.0) < 1e-5


def test_vectors_are_not_constant(clean_rows):
    vectors = np.stack([decode(r.vector) for r in clean_rows])
    assert len({r.vector for r in clean_rows}) == ROWS  # all different
    for v in vectors[:50]:
        assert np.ptp(v) > 0  # no vector has all components equal
    assert np.all(vectors.std(axis=0) > 0.1)  # every component varies across rows


def test_little_endian_reading_would_not_be_unit(clean_rows):
    """The bytes really are big-endian: read the wrong way they are not unit vectors."""
    wrong = [np.linalg.norm(np.frombuffer(r.vector, dtype="<f4").astype(np.float64)) for r in clean_rows[:20]]
    assert not all(np.isfinite(n) and abs(n - 1.0) < 1e-3 for n in wrong)


def test_unit_vectors_helper():
    v = unit_vectors(np.random.default_rng(0), 5, 3)
    assert v.dtype == np.dtype(">f4")
    assert v.shape == (5, 3)
    assert np.allclose(np.linalg.norm(v.astype(np.float64), axis=1), 1.0, atol=1e-6)


# --- documents -----------------------------------------------------------------------------------------


def test_documents_include_empty_and_large_but_none_over_100_kb(clean_rows):
    sizes = [len(r.document.encode("utf-8")) for r in clean_rows]
    assert all(isinstance(r.document, str) for r in clean_rows)
    assert 0 in sizes
    assert any(s > 20_000 for s in sizes)
    assert max(sizes) <= 100_000
    assert any(0 < s < 2_100 for s in sizes)


def test_documents_hold_non_ascii_text(clean_rows):
    text = " ".join(r.document for r in clean_rows)
    assert any(ord(c) > 127 for c in text)
    assert "🚀" in text  # a character outside the BMP (4 bytes in UTF-8)


# --- metadata -------------------------------------------------------------------------------------------


def test_metadata_blob_is_json_object_with_every_shape(clean_rows):
    parsed = [json.loads(r.metadata_blob) for r in clean_rows]
    assert all(isinstance(md, dict) for md in parsed)
    assert any(md == {} for md in parsed)
    top_level_types = {type(v) for md in parsed for v in md.values()}
    assert {str, int, float, bool, type(None), list, dict} <= top_level_types
    keys = {k for md in parsed for k in md}
    assert any(not k.isascii() for k in keys)
    assert any('"' in k for k in keys)


def test_metadata_holds_nested_values_and_big_ints(clean_rows):
    values = [v for r in clean_rows for v in walk(json.loads(r.metadata_blob))]
    assert any(isinstance(v, int) and not isinstance(v, bool) and v > 2**40 for v in values)
    assert any(isinstance(v, float) and v < 0 for v in values)
    assert any(isinstance(v, str) and not v.isascii() for v in values)
    assert any(isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()) for v in values)


def test_metadata_seq_counts_rows(clean_rows):
    seqs = [json.loads(r.metadata_blob).get("seq") for r in clean_rows]
    present = [(i, s) for i, s in enumerate(seqs) if s is not None]
    assert len(present) > ROWS // 2
    assert all(i == s for i, s in present)


# --- TTL --------------------------------------------------------------------------------------------------


def test_ttl_fraction_zero_gives_no_ttl(clean_rows):
    assert all(r.ttl == 0 for r in clean_rows)
    assert all(r.ttl == 0 for r in rows_of(ttl_fraction=0.0, seed=9))


def test_ttl_fraction_one_gives_every_row_a_ttl():
    rows = rows_of(ttl_fraction=1.0)
    assert all(3_600 <= r.ttl <= THIRTY_DAYS for r in rows)
    assert len({r.ttl for r in rows}) > 1


def test_ttl_fraction_half_gives_some():
    rows = rows_of(ttl_fraction=0.5)
    with_ttl = sum(1 for r in rows if r.ttl)
    assert 0.3 * ROWS < with_ttl < 0.7 * ROWS
    assert all(r.ttl == 0 or 3_600 <= r.ttl <= THIRTY_DAYS for r in rows)


# --- dirty rows -------------------------------------------------------------------------------------------


def test_dirty_adds_dirty_row_count_rows(clean_rows):
    dirty = rows_of(dirty=True)
    assert dirty_row_count() == 3 * len(DIRTY_KINDS)
    assert len(dirty) == ROWS + dirty_row_count()
    assert dirty[:ROWS] == clean_rows  # the clean rows are unchanged


def test_dirty_rows_cover_every_kind():
    extra = rows_of(dirty=True)[ROWS:]
    for kind, document, blob, has_vector in DIRTY_KINDS:
        matching = [
            r
            for r in extra
            if r.document == document and r.metadata_blob == blob and (r.vector is not None) == has_vector
        ]
        assert matching, f"no dirty row of kind {kind}"
    kinds = {(r.document, r.metadata_blob, r.vector is not None) for r in extra}
    assert kinds == {(d, b, v) for _, d, b, v in DIRTY_KINDS}


def test_dirty_kinds_are_what_they_say():
    by_kind = {kind: (document, blob, has_vector) for kind, document, blob, has_vector in DIRTY_KINDS}
    with pytest.raises(ValueError):
        json.loads(by_kind["malformed_json"][1])
    assert isinstance(json.loads(by_kind["json_list"][1]), list)
    assert isinstance(json.loads(by_kind["json_number"][1]), int)
    assert json.loads(by_kind["json_null"][1]) is None
    assert by_kind["null_metadata"][1] is None
    assert by_kind["empty_metadata"][1] == ""
    assert by_kind["null_document"][0] is None
    assert by_kind["null_vector"][2] is False


def test_dirty_rows_have_keys_and_valid_vectors():
    extra = rows_of(dirty=True)[ROWS:]
    assert len({r.document_id for r in extra}) == len(extra)
    assert all(isinstance(r.document_id, uuid.UUID) for r in extra)
    for r in extra:
        assert r.ttl == 0
        if r.vector is not None:
            assert abs(np.linalg.norm(decode(r.vector).astype(np.float64)) - 1.0) < 1e-5


# --- keys -----------------------------------------------------------------------------------------------------


def test_uuid_keys_are_unique_uuid4(clean_rows):
    keys = [r.document_id for r in clean_rows]
    assert all(isinstance(k, uuid.UUID) and k.version == 4 for k in keys)
    assert len(set(keys)) == len(keys)


def test_autoid_rows_have_no_document_id():
    rows = rows_of(key_type="autoid", dirty=True)
    assert len(rows) == ROWS + dirty_row_count()
    assert all(r.document_id is None for r in rows)


def test_text_keys_are_32_char_hex():
    rows = rows_of(key_type="text", dirty=True)
    hex32 = re.compile(r"^[0-9a-f]{32}$")
    assert all(isinstance(r.document_id, str) and hex32.match(r.document_id) for r in rows)
    assert len({r.document_id for r in rows}) == len(rows)
    assert all(uuid.UUID(hex=r.document_id).version == 4 for r in rows)


# --- the other legacy kinds -----------------------------------------------------------------------


def test_history_rows_are_langchain_messages_in_sessions() -> None:
    spec = SeedSpec(rows=200, dimension=1, kind="history")
    rows = list(fake_history_rows(spec))
    assert len(rows) == 200 and rows == list(fake_history_rows(spec))
    sessions = {session_id for session_id, _, _ in rows}
    assert 3 < len(sessions) < 200
    for _, blob, ttl in rows:
        message = json.loads(blob)
        assert message["type"] in ("human", "ai") and message["data"]["type"] == message["type"] and ttl == 0
    dirty = list(fake_history_rows(SeedSpec(rows=10, dimension=1, kind="history", dirty=True)))
    assert len(dirty) == 10 + dirty_row_count("history") and all(blob is None for _, blob, _ in dirty[10:])


def test_cache_rows_are_what_0_0_x_kvcache_put_stored() -> None:
    rows = list(fake_cache_rows(SeedSpec(rows=50, dimension=1, kind="kvcache", dirty=True)))
    good, dirty = rows[:50], rows[50:]
    assert len(dirty) == dirty_row_count("kvcache")
    for key_desc, cache_key, value, _ttl in good:
        assert key_desc == "llm_string/prompt"
        values = ast.literal_eval(cache_key)
        assert isinstance(values, list) and len(values) == 2 and str(values) == cache_key
        assert json.loads(value)[0]["text"]
    assert any('"' in c and "\\\\" in c for _, c, _, _ in good)  # quotes and backslashes in keys
    assert len({c for _, c, _, _ in good}) == 50  # distinct keys: no row overwrites another
