"""The legacy (cassio 0.0.x) tables: their DDL, and their recognition in a schema.

Three 0.0.x classes were in use (LangChain used all three): the vector table, the chat
history (`StoredBlobHistory`) and the LLM cache (`KVCache`). Each is a `LegacyLayout`;
a table found in the database is a `LegacyTable` of one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from .cql import qualified, quote
from .errors import SchemaError
from .retry import RetryPolicy

# cassio 0.0.7 `VectorTable(primary_key_type=...)`; 0.0.6 has UUID for auto_id, else TEXT.
KEY_TYPES = ("uuid", "text", "timeuuid")
# 'autoid' is cassio 0.0.6 with auto_id=True: now()-made time UUIDs in a UUID column.
SEED_KEY_TYPES = ("uuid", "text", "autoid")

_VECTOR_TYPE = re.compile(r"^vector<float, ?(\d+)>$")


@dataclass(frozen=True)
class LegacyLayout:
    """One 0.0.x class's table: its columns, and what each must be (kind, type)."""

    kind: str  # vector | history | kvcache
    label: str
    cls: str  # the 0.0.x class
    key: tuple[str, ...]  # the primary key, partition key columns first
    partition: int  # how many of `key` make the partition key
    values: tuple[str, ...]  # the other columns, copied with their write time and TTL
    types: dict[str, tuple[str, str]]  # column -> (kind, type); type "*" is checked by `describe_source`

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + self.values

    @property
    def partition_key(self) -> tuple[str, ...]:
        return self.key[: self.partition]


VECTOR = LegacyLayout(
    "vector",
    "legacy cassio vector table (0.0.x VectorTable)",
    "VectorTable",
    ("document_id",),
    1,
    ("embedding_vector", "document", "metadata_blob"),
    {
        "document_id": ("partition_key", "*"),
        "embedding_vector": ("regular", "*"),
        "document": ("regular", "text"),
        "metadata_blob": ("regular", "text"),
    },
)
HISTORY = LegacyLayout(
    "history",
    "legacy cassio chat history table (0.0.x StoredBlobHistory)",
    "StoredBlobHistory",
    ("session_id", "blob_id"),
    1,
    ("blob",),
    {"session_id": ("partition_key", "text"), "blob_id": ("clustering", "timeuuid"), "blob": ("regular", "text")},
)
KVCACHE = LegacyLayout(
    "kvcache",
    "legacy cassio LLM cache table (0.0.x KVCache)",
    "KVCache",
    ("key_desc", "cache_key"),
    2,
    ("cache_value",),
    {
        "key_desc": ("partition_key", "text"),
        "cache_key": ("partition_key", "text"),
        "cache_value": ("regular", "text"),
    },
)
LAYOUTS = {layout.kind: layout for layout in (VECTOR, HISTORY, KVCACHE)}
KINDS = tuple(LAYOUTS)
LEGACY_COLUMNS = VECTOR.columns


def create_table_cql(keyspace: str, table: str, key_type: str, dimension: int) -> str:
    """cassio 0.0.7's `create_vector_table`, with names quoted."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(keyspace, table)} (\n"
        f"    document_id {key_type.upper()} PRIMARY KEY,\n"
        f"    embedding_vector VECTOR<FLOAT, {dimension}>,\n"
        "    document TEXT,\n"
        "    metadata_blob TEXT\n"
        ")"
    )


def create_history_cql(keyspace: str, table: str) -> str:
    """cassio 0.0.7's `create_session_table` (StoredBlobHistory)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(keyspace, table)} (session_id TEXT, blob_id TIMEUUID, blob TEXT,"
        " PRIMARY KEY ((session_id), blob_id)) WITH CLUSTERING ORDER BY (blob_id ASC)"
    )


def create_kvcache_cql(keyspace: str, table: str) -> str:
    """cassio 0.0.7's `create_kv_table` (KVCache)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(keyspace, table)} (key_desc TEXT, cache_key TEXT, cache_value TEXT,"
        " PRIMARY KEY ((key_desc, cache_key)))"
    )


def index_name(table: str) -> str:
    return f"{table}_embedding_idx"


def create_index_cql(keyspace: str, table: str) -> str:
    """cassio 0.0.7's `create_vector_table_index` with its index name."""
    return (
        f"CREATE CUSTOM INDEX IF NOT EXISTS {quote(index_name(table))} ON {qualified(keyspace, table)}"
        " (embedding_vector) USING 'org.apache.cassandra.index.sai.StorageAttachedIndex'"
    )


@dataclass(frozen=True)
class LegacyTable:
    """A legacy table found in the database."""

    keyspace: str
    table: str
    key_type: str  # vector tables: document_id's type as system_schema spells it (uuid, text, timeuuid)
    dimension: int  # vector tables: the vector's dimension; 0 for the others
    layout: LegacyLayout = VECTOR

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"

    @property
    def kind(self) -> str:
        return self.layout.kind

    @property
    def uuid_columns(self) -> frozenset[str]:
        """The columns holding UUIDs (their text form in a rejects file)."""
        types = {name: self.key_type if want == "*" else want for name, (_, want) in self.layout.types.items()}
        return frozenset(name for name, ctype in types.items() if ctype in ("uuid", "timeuuid"))

    def describe(self) -> str:
        if self.layout is VECTOR:
            return f"{self.layout.label}, {self.key_type} keys, dimension {self.dimension}"
        return self.layout.label


# Tables already in a cassio 0.1.x layout, by their columns: who writes them.
CURRENT_LAYOUTS = {
    frozenset({"row_id", "body_blob", "vector", "metadata_s", "attributes_blob"}): (
        "MetadataVectorCassandraTable, as cassio 0.1.x VectorTable and LangChain's Cassandra vector store"
        " (langchain 0.0.281 and later) write it"
    ),
    frozenset({"partition_id", "row_id", "body_blob", "vector", "metadata_s", "attributes_blob"}): (
        "ClusteredMetadataVectorCassandraTable, as LlamaIndex's CassandraVectorStore (every release) writes it"
    ),
    frozenset({"partition_id", "row_id", "body_blob"}): (
        "ClusteredCassandraTable, as LangChain's CassandraChatMessageHistory (langchain 0.0.281 and later)"
        " and cassio 0.1.x StoredBlobHistory write it"
    ),
    frozenset({"key_desc", "key_vals", "body_blob"}): (
        "ElasticCassandraTable, as LangChain's CassandraCache and cassio 0.1.x KVCache write it"
    ),
}


# Schema reads come before a job's own policy exists: the default MIGRATION_RETRY_SECONDS
# (a database over its quota refuses them too).
SCHEMA_READS = RetryPolicy()


def _schema(session: Session, query: str, params: tuple[str, ...]) -> Any:
    return SCHEMA_READS.call("reading the schema", lambda: session.execute(query, params))


def table_columns(session: Session, keyspace: str, table: str) -> dict[str, tuple[str, str]]:
    """{column: (kind, type)} from system_schema; {} when the table does not exist."""
    rows = _schema(
        session,
        "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {r.column_name: (r.kind, r.type) for r in rows}


def require_keyspace(session: Session, keyspace: str, setting: str = "CASSANDRA_KEYSPACE") -> None:
    found = _schema(session, "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,))
    if not found.one():
        if session.cluster.cloud:  # Astra DB: CQL cannot create keyspaces there
            names = f"{setting} (or ASTRA_DB_KEYSPACE)" if setting == "CASSANDRA_KEYSPACE" else setting
            raise SchemaError(
                f"keyspace {keyspace!r} does not exist in this Astra database: create it in Astra's UI (the"
                f" database's Keyspaces) or with the DevOps API, as CQL cannot; or fix {names}"
            )
        raise SchemaError(f"keyspace {keyspace!r} does not exist: create it, or fix {setting}")


def describe_source(session: Session, keyspace: str, table: str) -> LegacyTable:
    """Recognise which legacy cassio class a table comes from, by its columns, or say what was found instead."""
    require_keyspace(session, keyspace)
    columns = table_columns(session, keyspace, table)
    if not columns:
        raise SchemaError(f"table {keyspace}.{table} does not exist: check OLD_TABLE")
    layout = next((lay for lay in LAYOUTS.values() if set(lay.columns) == set(columns)), None)
    if layout is None:
        current = CURRENT_LAYOUTS.get(frozenset(columns))
        if current is not None:
            raise SchemaError(
                f"{keyspace}.{table} is already in the cassio 0.1.x layout ({current}): nothing to migrate;"
                " open it as it is"
            )
        found = ", ".join(f"{name} {ctype}" for name, (_, ctype) in sorted(columns.items()))
        known = ", ".join(f"{lay.cls} ({', '.join(lay.columns)})" for lay in LAYOUTS.values())
        raise SchemaError(
            f"{keyspace}.{table} is not a legacy cassio table: found columns ({found});"
            f" expected the columns of a cassio 0.0.x {known}; check OLD_TABLE"
        )
    problems = [
        f"{name} is a {ctype} {ckind} (expected a {want_type.replace('*', '').strip()} {want_kind})".replace("  ", " ")
        for name, (want_kind, want_type) in layout.types.items()
        for ckind, ctype in [columns[name]]
        if ckind != want_kind or want_type not in ("*", ctype)
    ]
    key_type, dimension = "text", 0
    if layout is VECTOR:
        key_type = columns["document_id"][1]
        if key_type not in KEY_TYPES:
            problems.append(f"document_id is a {key_type} (expected uuid or text)")
        vector = _VECTOR_TYPE.match(columns["embedding_vector"][1])
        if vector is None:
            problems.append(f"embedding_vector is {columns['embedding_vector'][1]} (expected vector<float, N>)")
        else:
            dimension = int(vector.group(1))
    if problems:
        raise SchemaError(f"{keyspace}.{table} is not a {layout.label}: " + "; ".join(problems))
    return LegacyTable(keyspace, table, key_type, dimension, layout)
