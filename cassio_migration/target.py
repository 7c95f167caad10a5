"""The 0.1.x target table: created and described through cassio's own table classes.

A legacy vector table goes to `MetadataVectorCassandraTable` (what 0.1.x `VectorTable`
is), or, given a partition, to `ClusteredMetadataVectorCassandraTable`; a chat history to
the `ClusteredCassandraTable` that 0.1.x `StoredBlobHistory` uses, an LLM cache to the
`ElasticCassandraTable` that 0.1.x `KVCache` uses, with the arguments those classes pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassio.table.tables import (
    ClusteredCassandraTable,
    ClusteredMetadataVectorCassandraTable,
    ElasticCassandraTable,
    MetadataVectorCassandraTable,
)

from .errors import SchemaError, SettingsError
from .job import Job, MetadataIndexing
from .legacy import VECTOR, LegacyTable, require_keyspace, table_columns

# An LLM cache's rows each carry their own keys (key_desc); the table's DDL does not depend on them.
PROVISIONING_KEYS = ["key"]


@dataclass(frozen=True)
class TargetSpec:
    keyspace: str
    table: str
    key_type: str  # vector tables: uuid, text or timeuuid, as system_schema spells it
    dimension: int
    metadata_indexing: MetadataIndexing = MetadataIndexing()
    kind: str = "vector"  # the legacy kind this target takes: vector | history | kvcache
    partition_id: str | None = None  # vector tables: one partition for every row (a clustered table)
    partition_field: str | None = None  # vector tables: the partition from this metadata field

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"

    @property
    def clustered_vector(self) -> bool:
        return self.kind == "vector" and (self.partition_id is not None or self.partition_field is not None)

    def context(self) -> dict[str, Any]:
        """What shapes the target's rows (for the job context of the state)."""
        return {
            "kind": self.kind,
            "key_type": self.key_type,
            "dimension": self.dimension,
            "metadata_indexing": str(self.metadata_indexing),
            "partition_id": self.partition_id,
            "partition_field": self.partition_field,
        }


def target_spec(source: LegacyTable, job: Job) -> TargetSpec:
    """The target the job's source goes to; refuses options that do not fit the source's kind."""
    keyspace, table = job.target_ks, job.target_table
    if (keyspace, table) == (source.keyspace, source.table):
        raise SettingsError("TARGET_TABLE", "is the source table itself: choose another name")
    key_to_text = job.target_key_type == "text"
    if source.layout is not VECTOR and (key_to_text or job.partition_id or job.partition_field):
        raise SchemaError(
            f"{source.name} is a {source.layout.label}: TARGET_KEY_TYPE, TARGET_PARTITION_ID and"
            " TARGET_PARTITION_FIELD are for vector tables; unset them"
        )
    if job.partition_id is not None and job.partition_field is not None:
        raise SettingsError("TARGET_PARTITION_FIELD", "goes without TARGET_PARTITION_ID: set one of them")
    if key_to_text and source.key_type not in ("uuid", "timeuuid"):
        raise SchemaError(f"{source.name} has {source.key_type} keys: TARGET_KEY_TYPE=text is for UUID keys")
    return TargetSpec(
        keyspace,
        table,
        "text" if key_to_text else source.key_type,
        source.dimension,
        job.metadata_indexing,
        source.kind,
        job.partition_id,
        job.partition_field,
    )


def table_arguments(spec: TargetSpec, keys: list[str] | None = None) -> tuple[type, dict[str, Any]]:
    """cassio's table class for the target, and its arguments but session, keyspace, table and skip_provisioning.

    `keys`: an LLM cache's key names (the table object normalises one set of keys).
    """
    if spec.kind == "history":  # as 0.1.x StoredBlobHistory makes it
        return ClusteredCassandraTable, {"primary_key_type": ["TEXT", "TIMEUUID"], "ordering_in_partition": "DESC"}
    if spec.kind == "kvcache":  # as 0.1.x KVCache makes it
        keys = keys or PROVISIONING_KEYS
        return ElasticCassandraTable, {"keys": keys, "primary_key_type": ["TEXT"] * len(keys)}
    vector: dict[str, Any] = {"vector_dimension": spec.dimension, "metadata_indexing": spec.metadata_indexing.cassio()}
    if spec.clustered_vector:
        clustered = {"partition_id": spec.partition_id, "primary_key_type": ["TEXT", spec.key_type.upper()]}
        return ClusteredMetadataVectorCassandraTable, {**clustered, **vector}
    return MetadataVectorCassandraTable, {"primary_key_type": spec.key_type.upper(), **vector}


def cassio_table(session: Session, spec: TargetSpec, *, provision: bool, keys: list[str] | None = None) -> Any:
    """cassio's own table object for the target; `provision` lets cassio create it."""
    cls, arguments = table_arguments(spec, keys)
    return cls(session=session, keyspace=spec.keyspace, table=spec.table, skip_provisioning=not provision, **arguments)


def _normal_type(ctype: str) -> str:
    return re.sub(r",\s*", ", ", ctype.lower())


def expected_columns(session: Session, spec: TargetSpec) -> dict[str, tuple[str, str]]:
    """{column: (kind, type)} as system_schema would list the table cassio creates."""
    schema = cassio_table(session, spec, provision=False)._schema()
    kinds = {"pk": "partition_key", "cc": "clustering", "da": "regular"}
    return {name: (kinds[part], _normal_type(ctype)) for part, cols in schema.items() for name, ctype in cols}


def check_target(session: Session, spec: TargetSpec) -> bool:
    """True if the target exists with the expected layout, False if it does not exist."""
    require_keyspace(session, spec.keyspace, "TARGET_KEYSPACE")
    found = table_columns(session, spec.keyspace, spec.table)
    if not found:
        return False
    normalized = {name: (kind, _normal_type(ctype)) for name, (kind, ctype) in found.items()}
    expected = expected_columns(session, spec)
    if normalized != expected:
        differences = sorted(
            f"{name}: found {' '.join(normalized.get(name, ('', 'nothing'))).strip()},"
            f" expected {' '.join(expected.get(name, ('', 'no such column'))).strip()}"
            for name in set(normalized) | set(expected)
            if normalized.get(name) != expected.get(name)
        )
        raise SchemaError(
            f"target {spec.name} exists with another layout ({'; '.join(differences)}):"
            " choose another TARGET_TABLE or drop it; nothing was written"
        )
    return True


def prepare_target(session: Session, spec: TargetSpec, *, create: bool) -> Any:
    """Check the target's layout; with `create`, let cassio create what is missing."""
    check_target(session, spec)
    return cassio_table(session, spec, provision=create)
