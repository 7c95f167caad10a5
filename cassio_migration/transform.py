"""Legacy row -> the column values cassio 0.1.x `put` writes, and the rules for dirty rows.

The target values come from cassio's own normalisation (`_normalize_kwargs` of the
target table object), never from a copy of it, so they cannot drift from cassio.

Rules for rows cassio 0.1.x cannot take as they are (README, "Rules for unusual rows"):
- `metadata_blob` NULL, empty, or JSON `null`: no metadata (`{}`).
- `metadata_blob` a JSON object: the metadata, as cassio stores it.
- `metadata_blob` another JSON value (list, number, string, bool): rejected
  (`metadata_not_object`), or, with a wrap key, stored as `{key: value}`.
- `metadata_blob` not JSON: rejected (`metadata_malformed_json`), or, with a wrap
  key, stored as `{key: the raw text}`.
- `document` NULL or `embedding_vector` NULL: migrated as NULL `body_blob` / `vector`
  (the new layout holds them; such a row was not searchable before either).
- metadata that cassio's normalisation refuses (e.g. an integer too large for a
  float): rejected (`metadata_unstorable`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from cassio.table.tables import MetadataVectorCassandraTable


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str


class Transformer:
    """Turns one legacy row into the target's column values, or a Reject."""

    def __init__(self, table: MetadataVectorCassandraTable, *, key_to_text: bool = False, wrap_key: str | None = None):
        self._table = table
        self._key_to_text = key_to_text
        self._wrap_key = wrap_key
        # With metadata always given, cassio's put writes the same columns for every row.
        probe = self._normalize(uuid.UUID(int=0), "", b"", {})
        self.columns: tuple[str, ...] = tuple(c for c, _ in table._schema_collist() if c in probe)

    def _normalize(self, key: Any, document: str | None, vector: Any, metadata: dict[str, Any]) -> dict[str, Any]:
        args = {"row_id": key, "body_blob": document, "vector": vector, "metadata": metadata}
        return self._table._normalize_kwargs(args, is_write=True)

    def metadata(self, blob: str | None) -> dict[str, Any] | Reject:
        if blob is None or blob == "":
            return {}
        try:
            value = json.loads(blob)
        except ValueError as exc:
            if self._wrap_key:
                return {self._wrap_key: blob}
            return Reject("metadata_malformed_json", f"metadata_blob is not JSON ({exc})")
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        if self._wrap_key:
            return {self._wrap_key: value}
        return Reject("metadata_not_object", f"metadata_blob is a JSON {type(value).__name__}, not an object")

    def key(self, document_id: Any) -> Any:
        return str(document_id) if self._key_to_text else document_id

    def values(
        self, document_id: Any, vector: Any, document: str | None, metadata_blob: str | None
    ) -> tuple[Any, ...] | Reject:
        """The target column values, in `self.columns` order."""
        metadata = self.metadata(metadata_blob)
        if isinstance(metadata, Reject):
            return metadata
        try:
            normalized = self._normalize(self.key(document_id), document, vector, metadata)
        except (ValueError, TypeError, OverflowError) as exc:
            return Reject("metadata_unstorable", f"cassio cannot store this metadata ({exc})")
        return tuple(normalized[c] for c in self.columns)

    def as_read(self, row: dict[str, Any]) -> dict[str, Any]:
        """A target row as cassio 0.1.x hands it to the application."""
        return self._table._normalize_row(row)
