"""The legacy (cassio 0.0.x) vector table: its DDL and its recognition in a schema."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cassandra.cluster import Session

from .cql import qualified, quote
from .errors import SchemaError

# cassio 0.0.7 `VectorTable(primary_key_type=...)`; 0.0.6 has UUID for auto_id, else TEXT.
KEY_TYPES = ("uuid", "text", "timeuuid")
# 'autoid' is cassio 0.0.6 with auto_id=True: now()-made time UUIDs in a UUID column.
SEED_KEY_TYPES = ("uuid", "text", "autoid")

LEGACY_COLUMNS = ("document_id", "embedding_vector", "document", "metadata_blob")

# The other cassio 0.0.x classes LangChain used, recognised by their columns.
OTHER_LEGACY_CLASSES = {
    frozenset({"session_id", "blob_id", "blob"}): "a legacy cassio chat history table (0.0.x StoredBlobHistory)",
    frozenset({"key_desc", "cache_key", "cache_value"}): "a legacy cassio LLM cache table (0.0.x KVCache)",
}
_VECTOR_TYPE = re.compile(r"^vector<float, ?(\d+)>$")


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


def index_name(table: str) -> str:
    return f"{table}_embedding_idx"


def create_index_cql(keyspace: str, table: str) -> str:
    """cassio 0.0.7's `create_vector_table_index` with its index name."""
    return (
        f"CREATE CUSTOM INDEX IF NOT EXISTS {quote(index_name(table))} ON {qualified(keyspace, table)}"
        " (embedding_vector) USING 'org.apache.cassandra.index.sai.StorageAttachedIndex'"
    )


@dataclass(frozen=True)
class LegacyVectorTable:
    """A legacy vector table found in the database."""

    keyspace: str
    table: str
    key_type: str  # as system_schema spells it: uuid, text, timeuuid
    dimension: int

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"


def table_columns(session: Session, keyspace: str, table: str) -> dict[str, tuple[str, str]]:
    """{column: (kind, type)} from system_schema; {} when the table does not exist."""
    rows = session.execute(
        "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {r.column_name: (r.kind, r.type) for r in rows}


def require_keyspace(session: Session, keyspace: str, setting: str = "CASSANDRA_KEYSPACE") -> None:
    found = session.execute("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,))
    if not found.one():
        raise SchemaError(f"keyspace {keyspace!r} does not exist: create it, or fix {setting}")


def describe_source(session: Session, keyspace: str, table: str) -> LegacyVectorTable:
    """Recognise a legacy cassio vector table, or say what was found instead."""
    require_keyspace(session, keyspace)
    columns = table_columns(session, keyspace, table)
    if not columns:
        raise SchemaError(f"table {keyspace}.{table} does not exist: check OLD_TABLE")
    found = ", ".join(f"{name} {ctype}" for name, (_, ctype) in sorted(columns.items()))
    other = OTHER_LEGACY_CLASSES.get(frozenset(columns))
    if other:
        raise SchemaError(f"{keyspace}.{table} is {other}: this tool migrates legacy vector tables only, so far")
    if set(columns) != set(LEGACY_COLUMNS):
        raise SchemaError(
            f"{keyspace}.{table} is not a legacy cassio vector table: found columns ({found});"
            f" expected {', '.join(LEGACY_COLUMNS)}"
        )
    key_kind, key_type = columns["document_id"]
    vector = _VECTOR_TYPE.match(columns["embedding_vector"][1])
    problems = []
    if key_kind != "partition_key" or key_type not in KEY_TYPES:
        problems.append(f"document_id is a {key_type} {key_kind} (expected a uuid or text partition key)")
    if vector is None:
        problems.append(f"embedding_vector is {columns['embedding_vector'][1]} (expected vector<float, N>)")
    for name in ("document", "metadata_blob"):
        if columns[name][1] != "text":
            problems.append(f"{name} is {columns[name][1]} (expected text)")
    if problems:
        raise SchemaError(f"{keyspace}.{table} is not a legacy cassio vector table: " + "; ".join(problems))
    assert vector is not None
    return LegacyVectorTable(keyspace, table, key_type, int(vector.group(1)))
