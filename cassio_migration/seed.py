"""Fake data for create.py: a legacy table as cassio 0.0.7 would hold it, and dirty rows.

Each legacy kind: a vector table (VectorTable), a chat history (StoredBlobHistory) with
LangChain's message JSON, an LLM cache (KVCache) with LangChain's keys.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from cassandra.cluster import Session

from .connect import prepare_raw, schema_change
from .cql import literal, qualified, quote
from .errors import UsageError
from .inflight import Pace, WriteWindow
from .legacy import (
    LAYOUTS,
    SEED_KEY_TYPES,
    create_history_cql,
    create_index_cql,
    create_kvcache_cql,
    create_table_cql,
    describe_source,
)
from .plan import require_murmur3
from .retry import RetryPolicy

_WORDS = [
    "vector",
    "search",
    "embeddings",
    "Cassandra",
    "table",
    "migration",
    "layout",
    "cassio",
    "row",
    "metadata",
    "token",
    "range",
    "index",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "データ",
    "ベクトル",
    "Москва",
    "данные",
    "🚀",
    "✓",
    "∑",
    "λ",
]

# Legacy rows that cassio never wrote this way but real tables hold: (kind, document, metadata_blob, has vector).
DIRTY_KINDS: tuple[tuple[str, str | None, str | None, bool], ...] = (
    ("malformed_json", "dirty: malformed JSON", '{"source": "broken', True),
    ("json_list", "dirty: JSON list", "[1, 2, 3]", True),
    ("json_number", "dirty: JSON number", "42", True),
    ("json_null", "dirty: JSON null", "null", True),
    ("null_metadata", "dirty: NULL metadata_blob", None, True),
    ("empty_metadata", "dirty: empty metadata_blob", "", True),
    ("null_document", None, '{"kind": "null document"}', True),
    ("null_vector", "dirty: NULL vector", '{"kind": "null vector"}', False),
)
# Chat history rows cassio never wrote this way: (kind, blob).
HISTORY_DIRTY_KINDS: tuple[tuple[str, str | None], ...] = (("null_blob", None),)
# LLM cache rows other code wrote: (kind, key_desc, cache_key).
CACHE_DIRTY_KINDS: tuple[tuple[str, str, str], ...] = (
    ("cache_key_not_a_list", "llm_string/prompt", "not a python list"),
    ("cache_key_wrong_length", "llm_string/prompt", "['only one value']"),
)


POLICY = RetryPolicy(hint="")  # create.py's schema changes, prepares and writes


@dataclass(frozen=True)
class SeedSpec:
    rows: int
    dimension: int
    key_type: str = "uuid"  # uuid | text | autoid
    dirty: bool = False
    ttl_fraction: float = 0.0
    seed: int = 42
    append: bool = False
    kind: str = "vector"  # vector | history | kvcache


@dataclass(frozen=True)
class FakeRow:
    document_id: Any  # None for autoid: the INSERT uses now()
    vector: bytes | None  # VECTOR<FLOAT,n> wire bytes (big-endian float32)
    document: str | None
    metadata_blob: str | None
    ttl: int  # 0 = none


def unit_vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    """Random unit vectors, never constant, as big-endian float32 rows."""
    v = rng.standard_normal((count, dimension)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(">f4")


def _document(rnd: random.Random) -> str:
    roll = rnd.random()
    if roll < 0.02:
        return ""
    # 1% large documents, up to 100 kB
    target = rnd.randint(20_000, 99_000) if roll < 0.03 else rnd.randint(20, 2_000)
    words: list[str] = []
    size = 0
    while size < target:
        w = rnd.choice(_WORDS)
        words.append(w)
        size += len(w.encode()) + 1
    return " ".join(words)


def _metadata(rnd: random.Random, i: int) -> dict[str, Any]:
    """Metadata of every JSON shape cassio users stored."""
    if rnd.random() < 0.05:
        return {}
    md: dict[str, Any] = {
        "source": rnd.choice(["wiki", "pdf", "web", "Zürich notes", "東京"]),
        "page": rnd.randint(-5, 10_000),
        "score": round(rnd.uniform(-1, 1), rnd.randint(0, 6)),
        "is_public": rnd.random() < 0.5,
        "reviewer": None,
        "seq": i,
    }
    extras: list[tuple[str, Any]] = [
        ("tags", [rnd.choice(_WORDS) for _ in range(rnd.randint(0, 4))]),
        ("nested", {"a": rnd.randint(0, 9), "b": [1.5, None, True, "x"], "c": {"d": "é"}}),
        ("ключ", "значение"),
        ("名前", rnd.choice(["値", ""])),
        ("big_int", rnd.randint(2**40, 2**53)),
        ("float_exp", 1.5e-12),
        ('quote"key', 'it\'s "quoted"'),
    ]
    for key, value in extras:
        if rnd.random() < 0.4:
            md[key] = value
    return md


def fake_rows(spec: SeedSpec) -> Iterator[FakeRow]:
    """Reproducible rows for a seed: the same spec gives the same rows."""
    rnd = random.Random(spec.seed)
    rng = np.random.default_rng(spec.seed)
    # Keys of appended rows must not repeat the first run's (same seed, same keys would overwrite).
    keys = random.Random(random.SystemRandom().getrandbits(64) if spec.append else spec.seed + 1)
    batch = 1024
    done = 0
    while done < spec.rows:
        vectors = unit_vectors(rng, min(batch, spec.rows - done), spec.dimension)
        for vec in vectors:
            key = _key(keys, spec.key_type)
            ttl = rnd.randint(3_600, 30 * 86_400) if rnd.random() < spec.ttl_fraction else 0
            yield FakeRow(key, vec.tobytes(), _document(rnd), json.dumps(_metadata(rnd, done)), ttl)
            done += 1
    if spec.dirty:
        vec = unit_vectors(rng, 1, spec.dimension)[0].tobytes()
        for _kind, document, blob, has_vector in DIRTY_KINDS:
            for _ in range(3):
                yield FakeRow(_key(keys, spec.key_type), vec if has_vector else None, document, blob, 0)


def _message(rnd: random.Random, turn: int) -> str:
    """A LangChain chat message as its chat history stored it (`message_to_dict`, JSON)."""
    kind = "human" if turn % 2 == 0 else "ai"
    content = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(1, 60)))
    return json.dumps(
        {"type": kind, "data": {"content": content, "additional_kwargs": {}, "type": kind, "example": False}}
    )


def fake_history_rows(spec: SeedSpec) -> Iterator[tuple[Any, ...]]:
    """(session_id, blob, ttl) in sessions of 1-40 messages; blob ids are the node's now(), as cassio 0.0.x made them."""
    rnd = random.Random(spec.seed)
    keys = random.Random(random.SystemRandom().getrandbits(64) if spec.append else spec.seed + 1)
    done = 0
    while done < spec.rows:
        session_id = f"session-{keys.getrandbits(48):012x}"
        ttl = rnd.randint(3_600, 30 * 86_400) if rnd.random() < spec.ttl_fraction else 0
        for turn in range(min(rnd.randint(1, 40), spec.rows - done)):
            yield session_id, _message(rnd, turn), ttl
            done += 1
    if spec.dirty:
        for _kind, blob in HISTORY_DIRTY_KINDS:
            for _ in range(3):
                yield f"session-{keys.getrandbits(48):012x}", blob, 0


def fake_cache_rows(spec: SeedSpec) -> Iterator[tuple[Any, ...]]:
    """(key_desc, cache_key, cache_value, ttl) as LangChain's CassandraCache stored them through cassio 0.0.x."""
    rnd = random.Random(spec.seed)
    keys = random.Random(random.SystemRandom().getrandbits(64) if spec.append else spec.seed + 1)
    for i in range(spec.rows):
        llm_string = str(sorted({"_type": "openai", "model_name": rnd.choice(["gpt-3.5-turbo", "gpt-4"])}.items()))
        prompt = f"Q{keys.getrandbits(32)}: " + " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(1, 30)))
        if i % 10 == 0:
            prompt += ' "it\'s"\n\\ quoted'  # both quote kinds, a newline and a backslash in the repr
        generations = [
            {"text": " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(1, 80))), "generation_info": None}
        ]
        ttl = rnd.randint(3_600, 30 * 86_400) if rnd.random() < spec.ttl_fraction else 0
        yield "llm_string/prompt", str([llm_string, prompt]), json.dumps(generations), ttl
    if spec.dirty:
        for _kind, key_desc, cache_key in CACHE_DIRTY_KINDS:
            for n in range(3):
                yield key_desc, f"{cache_key} {keys.getrandbits(32)}" if n else cache_key, "dirty", 0


def _key(rnd: random.Random, key_type: str) -> Any:
    if key_type == "autoid":
        return None
    u = uuid.UUID(int=rnd.getrandbits(128), version=4)
    return u if key_type == "uuid" else u.hex  # LangChain's TEXT ids were uuid4 hex strings


def dirty_row_count(kind: str = "vector") -> int:
    return 3 * len({"vector": DIRTY_KINDS, "history": HISTORY_DIRTY_KINDS, "kvcache": CACHE_DIRTY_KINDS}[kind])


def create_keyspace(session: Session, keyspace: str, replication_factor: int) -> None:
    """The keyspace, if it is not there yet: NetworkTopologyStrategy, `replication_factor` replicas in the
    data center of the node the session asks (SimpleStrategy's successor for clusters)."""
    local = POLICY.call("reading the data center", lambda: session.execute("SELECT data_center FROM system.local"))
    data_center = local.one().data_center
    cql = (
        f"CREATE KEYSPACE IF NOT EXISTS {quote(keyspace)} WITH replication ="
        f" {{'class': 'NetworkTopologyStrategy', {literal(data_center)}: {replication_factor}}}"
    )
    schema_change(session, cql, POLICY, "creating the keyspace")


def create_legacy_table(session: Session, keyspace: str, table: str, spec: SeedSpec) -> None:
    if spec.kind == "history":
        statements = [create_history_cql(keyspace, table)]
    elif spec.kind == "kvcache":
        statements = [create_kvcache_cql(keyspace, table)]
    else:
        if spec.key_type not in SEED_KEY_TYPES:
            raise UsageError(f"--key-type {spec.key_type!r}: use one of {', '.join(SEED_KEY_TYPES)}")
        column_type = "uuid" if spec.key_type == "autoid" else spec.key_type
        statements = [create_table_cql(keyspace, table, column_type, spec.dimension), create_index_cql(keyspace, table)]
    for cql in statements:  # IF NOT EXISTS: safe to try again
        schema_change(session, cql, POLICY, "creating the legacy table")


def _writes(raw: Session, keyspace: str, table: str, spec: SeedSpec) -> tuple[Any, Iterator[tuple[Any, ...]]]:
    """The INSERT of the kind, as cassio 0.0.x wrote it, and the values of each row."""
    name = qualified(keyspace, table)
    if spec.kind == "history":
        insert = f"INSERT INTO {name} (session_id, blob_id, blob) VALUES (?, now(), ?) USING TTL ?"
        return prepare_raw(raw, insert, POLICY), fake_history_rows(spec)
    if spec.kind == "kvcache":
        insert = f"INSERT INTO {name} (key_desc, cache_key, cache_value) VALUES (?, ?, ?) USING TTL ?"
        return prepare_raw(raw, insert, POLICY), fake_cache_rows(spec)
    key = "now()" if spec.key_type == "autoid" else "?"
    insert = (
        f"INSERT INTO {name} (document_id, embedding_vector, document, metadata_blob) VALUES ({key}, ?, ?, ?)"
        " USING TTL ?"
    )
    rows = (
        (*((r.document_id,) if r.document_id is not None else ()), r.vector, r.document, r.metadata_blob, r.ttl)
        for r in fake_rows(spec)
    )
    return prepare_raw(raw, insert, POLICY), rows


def seed(
    session: Session,
    raw: Session,
    keyspace: str,
    table: str,
    spec: SeedSpec,
    *,
    concurrency: int = 64,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Create the legacy table of the spec's kind and write the fake rows (through `raw`, a raw-vector session)."""
    if spec.kind == "vector":
        require_murmur3(session, "source")  # cassio's vector index (SAI) needs Murmur3 too
    create_legacy_table(session, keyspace, table, spec)
    found = describe_source(session, keyspace, table)
    if found.kind != spec.kind:
        raise UsageError(
            f"{keyspace}.{table} already exists as a {found.layout.label}: use another FAKE_DATA_OLD_TABLE"
        )
    if spec.kind == "vector" and found.dimension != spec.dimension:
        raise UsageError(
            f"{keyspace}.{table} already exists with dimension {found.dimension}, not {spec.dimension}:"
            " use --dimension to match, or another FAKE_DATA_OLD_TABLE"
        )
    first_key = LAYOUTS[spec.kind].key[0]
    first_row = f"SELECT {first_key} FROM {qualified(keyspace, table)} LIMIT 1"
    if not spec.append and POLICY.call("reading the table", lambda: session.execute(first_row)).one():
        raise UsageError(f"{keyspace}.{table} already has rows: pass --append to add more, or use another table")
    insert, rows = _writes(raw, keyspace, table, spec)
    window = WriteWindow(raw, Pace(concurrency), POLICY)
    written = 0
    for values in rows:
        window.submit(insert, values)
        written += 1
        if progress and written % 256 == 0:
            progress(256)
    window.drain()
    if progress:
        progress(written % 256)
    return written
