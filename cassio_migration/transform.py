"""Legacy row -> the column values cassio 0.1.x writes, and the rules for dirty rows.

One transformer per legacy kind. The target values come from cassio's own
normalisation (`_normalize_kwargs` of the target table object), never from a copy of
it, so they cannot drift from cassio.

Rules for rows cassio 0.1.x cannot take as they are (docs/legacy-tables.md):
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
- with a partition field: a row whose metadata lacks it, or holds a list or object
  there, is rejected (`partition_field_missing`, `partition_field_not_scalar`).
- an LLM cache row whose `cache_key` is not the `str()` of a list with one value per
  name of `key_desc`: rejected (`cache_key_malformed`); one that parses as such a list but
  is written otherwise (double quotes, `1e999`): rejected (`cache_key_not_canonical`); one
  whose values cassio cannot store (a set, bytes): rejected (`cache_key_unstorable`).
- for a framework's reader (`--for langchain`, `--for llamaindex`): a vector row with a NULL
  `document` (`document_null`); for LlamaIndex, one whose metadata has no `_node_content`
  string, or one that is not a JSON object (`node_content_missing`, `node_content_malformed`):
  see frameworks.row_problem.
"""

from __future__ import annotations

import ast
import json
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from typing import Any

from .frameworks import row_problem
from .job import Job
from .target import TargetSpec, cassio_table

# CPython 3.11 can fail "AST constructor recursion depth mismatch" when threads parse at once.
_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str


class RowTransformer(ABC):
    """Turns one legacy row (its key and value columns, in the layout's order) into the target's column values.

    `columns`: the target columns written, in cassio's order; `key`: the target's primary key
    columns, partition key first; `timed`: the value columns WRITETIME() can be asked of (not
    collections). `same_order`: the target row of a source row has the same token, so
    verification can scan both tables range by range.
    """

    columns: tuple[str, ...]
    key: tuple[str, ...]
    partition_key: tuple[str, ...]
    timed: tuple[str, ...]
    same_order: bool = True
    key_from_values: bool = False  # the target key depends on more than the source key (a partition field)

    def __init__(self, table: Any) -> None:
        self._table = table
        self.partition_key = tuple(c for c, _ in table._schema_pk())
        self.key = tuple(c for c, _ in table._schema_primary_key())
        self.timed = tuple(c for c, t in table._schema_da() if not t.upper().startswith(("MAP", "LIST", "SET")))

    @abstractmethod
    def values(self, *row: Any) -> tuple[Any, ...] | Reject: ...

    def _ordered(self, normalized: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(normalized[c] for c in self.columns)

    def source_key(self, target_key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The key of the source row a target row would come from (None: no source row could)."""
        return target_key

    def as_read(self, row: dict[str, Any]) -> dict[str, Any]:
        """A target row as cassio 0.1.x hands it to the application."""
        return row


class VectorTransformer(RowTransformer):
    """A legacy vector row -> what cassio 0.1.x `put` writes (optionally clustered into a partition)."""

    def __init__(
        self,
        table: Any,
        *,
        key_to_text: bool = False,
        wrap_key: str | None = None,
        partition_field: str | None = None,
        framework: str = "cassio",
    ) -> None:
        super().__init__(table)
        self._key_to_text = key_to_text
        self._wrap_key = wrap_key
        self._partition_field = partition_field
        self.key_from_values = partition_field is not None
        # Bound once: a cassio target (the default) pays no call per row.
        self._row_problem = partial(row_problem, framework) if framework != "cassio" else None
        self.same_order = not key_to_text and self.key == ("row_id",)
        # With metadata always given, cassio's put writes the same columns for every row.
        probe = self._normalize(uuid.UUID(int=0), "", b"", {}, "p")
        self.columns = tuple(c for c, _ in table._schema_collist() if c in probe)

    def _normalize(
        self, key: Any, document: str | None, vector: Any, metadata: dict[str, Any], partition: str | None
    ) -> dict[str, Any]:
        args = {"row_id": key, "body_blob": document, "vector": vector, "metadata": metadata}
        if partition is not None:
            args["partition_id"] = partition
        normalized: dict[str, Any] = self._table._normalize_kwargs(args, is_write=True)
        return normalized

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

    def partition(self, metadata: dict[str, Any]) -> str | Reject | None:
        """The row's partition from its metadata field (None: the table's constant partition, or none)."""
        if self._partition_field is None:
            return None
        value = metadata.get(self._partition_field)
        if value is None:
            return Reject("partition_field_missing", f"metadata has no {self._partition_field!r} for the partition")
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return json.dumps(value)
        return Reject(
            "partition_field_not_scalar", f"metadata {self._partition_field!r} is a {type(value).__name__}, not text"
        )

    def key_of(self, document_id: Any) -> Any:
        return str(document_id) if self._key_to_text else document_id

    def values(self, *row: Any) -> tuple[Any, ...] | Reject:
        """(document_id, embedding_vector, document, metadata_blob) -> the target columns, in `columns` order."""
        document_id, vector, document, metadata_blob = row
        metadata = self.metadata(metadata_blob)
        if isinstance(metadata, Reject):
            return metadata
        partition = self.partition(metadata)
        if isinstance(partition, Reject):
            return partition
        problem = self._row_problem(document, metadata) if self._row_problem is not None else None
        if problem is not None:
            return Reject(*problem)
        try:
            normalized = self._normalize(self.key_of(document_id), document, vector, metadata, partition)
        except (ValueError, TypeError, OverflowError) as exc:
            return Reject("metadata_unstorable", f"cassio cannot store this metadata ({exc})")
        return self._ordered(normalized)

    def source_key(self, target_key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row_id = target_key[-1]
        if not self._key_to_text:
            return (row_id,)
        try:
            return (uuid.UUID(row_id),)
        except ValueError:
            return None  # not a UUID: cannot come from the source

    def as_read(self, row: dict[str, Any]) -> dict[str, Any]:
        read: dict[str, Any] = self._table._normalize_row(row)
        return read


class HistoryTransformer(RowTransformer):
    """A legacy chat history row -> what 0.1.x `StoredBlobHistory.store` writes (same session, same blob id)."""

    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self.columns = tuple(c for c, _ in table._schema_collist())

    def values(self, *row: Any) -> tuple[Any, ...] | Reject:
        """(session_id, blob_id, blob) -> the target columns."""
        session_id, blob_id, blob = row
        args = {"partition_id": session_id, "row_id": blob_id, "body_blob": blob}
        return self._ordered(self._table._normalize_kwargs(args, is_write=True))


class KVCacheTransformer(RowTransformer):
    """A legacy LLM cache row -> what 0.1.x `KVCache.put` writes for the same keys.

    0.0.x stored the key names as `'/'.join(keys)` and the key values as `str(list)`;
    0.1.x stores both as compact JSON lists, through a table object that knows the names.
    """

    same_order = False  # the key's text changes, and with it the token

    def __init__(self, spec: TargetSpec, session: Any) -> None:
        super().__init__(cassio_table(session, spec, provision=False))
        self.columns = tuple(c for c, _ in self._table._schema_collist())
        self._spec = spec
        self._session = session
        self._tables: dict[str, Any] = {}  # key_desc -> cassio's table object for those key names

    def _table_for(self, key_desc: str) -> Any:
        table = self._tables.get(key_desc)
        if table is None:
            table = cassio_table(self._session, self._spec, provision=False, keys=key_desc.split("/"))
            self._tables[key_desc] = table
        return table

    def values(self, *row: Any) -> tuple[Any, ...] | Reject:
        """(key_desc, cache_key, cache_value) -> the target columns."""
        key_desc, cache_key, cache_value = row
        names = key_desc.split("/")
        try:
            with _PARSE_LOCK:
                key_values = ast.literal_eval(cache_key)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            return Reject("cache_key_malformed", f"cache_key is not the str() of a list ({type(exc).__name__})")
        if len(set(names)) != len(names):
            return Reject("cache_key_malformed", f"key_desc {key_desc!r} names a key twice")
        if not isinstance(key_values, list) or len(key_values) != len(names):
            return Reject(
                "cache_key_malformed", f"cache_key is not a list of {len(names)} values (one per name in key_desc)"
            )
        # Verification and --delete-extra find a target row's source row by turning its key back into
        # this text: a key written otherwise than str(list) would be lost to them.
        canonical = str(key_values)
        if canonical != cache_key:
            return Reject(
                "cache_key_not_canonical",
                f"cache_key is not written as str(list) writes it ({canonical[:200]!r} would be)",
            )
        args = {**dict(zip(names, key_values)), "body_blob": cache_value}
        try:
            return self._ordered(self._table_for(key_desc)._normalize_kwargs(args, is_write=True))
        except (TypeError, ValueError, OverflowError) as exc:
            return Reject("cache_key_unstorable", f"cassio cannot store this cache_key ({type(exc).__name__}: {exc})")

    def source_key(self, target_key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        try:
            names, key_values = json.loads(target_key[0]), json.loads(target_key[1])
            return ("/".join(names), str(key_values))
        except (ValueError, TypeError):
            return None  # not cassio's JSON: cannot come from the source


def transformer_for(spec: TargetSpec, session: Any, job: Job | None = None) -> RowTransformer:
    """The transformer of the target's kind, around cassio's own table object (never provisioning)."""
    if spec.kind == "kvcache":
        return KVCacheTransformer(spec, session)
    table = cassio_table(session, spec, provision=False)
    if spec.kind == "history":
        return HistoryTransformer(table)
    return VectorTransformer(
        table,
        key_to_text=job is not None and job.target_key_type == "text",
        wrap_key=job.metadata_wrap_key if job is not None else None,
        partition_field=spec.partition_field,
        framework=job.target_framework if job is not None else "cassio",
    )
