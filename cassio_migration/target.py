"""The 0.1.x target table: created and described through cassio's own table class."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassio.table.tables import MetadataVectorCassandraTable

from .errors import SchemaError, SettingsError
from .legacy import LegacyVectorTable, require_keyspace, table_columns


@dataclass(frozen=True)
class TargetSpec:
    keyspace: str
    table: str
    key_type: str  # uuid, text or timeuuid, as system_schema spells it
    dimension: int
    metadata_indexing: str = "all"  # all | none | allow:a,b | deny:a,b

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"


def target_spec(
    source: LegacyVectorTable, keyspace: str, table: str, *, key_to_text: bool, metadata_indexing: str
) -> TargetSpec:
    if (keyspace, table) == (source.keyspace, source.table):
        raise SettingsError("TARGET_TABLE", "is the source table itself: choose another name")
    key_type = "text" if key_to_text else source.key_type
    return TargetSpec(keyspace, table, key_type, source.dimension, metadata_indexing)


def indexing_policy(value: str) -> Any:
    """Our setting's form ('allow:a,b') in cassio's form (('allow', ['a', 'b']))."""
    if value in ("all", "none"):
        return value
    mode, _, fields = value.partition(":")
    return (mode, fields.split(","))


def cassio_table(session: Session, spec: TargetSpec, *, provision: bool) -> MetadataVectorCassandraTable:
    """cassio's own table object for the target; `provision` lets cassio create it."""
    return MetadataVectorCassandraTable(
        session=session,
        keyspace=spec.keyspace,
        table=spec.table,
        vector_dimension=spec.dimension,
        primary_key_type=spec.key_type.upper(),
        metadata_indexing=indexing_policy(spec.metadata_indexing),
        skip_provisioning=not provision,
    )


def expected_columns(spec: TargetSpec) -> dict[str, tuple[str, str]]:
    return {
        "row_id": ("partition_key", spec.key_type),
        "body_blob": ("regular", "text"),
        "attributes_blob": ("regular", "text"),
        "metadata_s": ("regular", "map<text, text>"),
        "vector": ("regular", f"vector<float, {spec.dimension}>"),
    }


def check_target(session: Session, spec: TargetSpec) -> bool:
    """True if the target exists with the expected layout, False if it does not exist."""
    require_keyspace(session, spec.keyspace, "TARGET_KEYSPACE")
    found = table_columns(session, spec.keyspace, spec.table)
    if not found:
        return False
    normalized = {name: (kind, re.sub(r",\s*", ", ", ctype)) for name, (kind, ctype) in found.items()}
    expected = expected_columns(spec)
    if normalized != expected:
        differences = sorted(
            f"{name}: found {normalized.get(name, ('-', 'nothing'))[1]}, expected {expected.get(name, ('-', 'no such column'))[1]}"
            for name in set(normalized) | set(expected)
            if normalized.get(name) != expected.get(name)
        )
        raise SchemaError(
            f"target {spec.name} exists with another layout ({'; '.join(differences)}):"
            " choose another TARGET_TABLE or drop it; nothing was written"
        )
    return True


def prepare_target(session: Session, spec: TargetSpec, *, create: bool) -> MetadataVectorCassandraTable:
    """Check the target's layout; with `create`, let cassio create what is missing."""
    check_target(session, spec)
    return cassio_table(session, spec, provision=create)
