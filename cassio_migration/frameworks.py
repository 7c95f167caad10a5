"""The frameworks that read migrated tables: their presets, the rows their readers cannot take,
and how a source is recognised as theirs.

A preset (TARGET_FRAMEWORK, `--for`) gives the target the layout that framework's current
reader opens, exactly as its current package creates it, filling in only the target settings
the user left unset:

- langchain (langchain-community 0.4.x): the vector store `Cassandra` opens a
  `MetadataVectorCassandraTable(primary_key_type="TEXT", metadata_indexing=<its argument, "all">)`:
  UUID keys become text, no partition. Its chat history and LLM cache open the tables the tool
  makes for those kinds anyway.
- llamaindex (llama-index-vector-stores-cassandra 0.6.x): `CassandraVectorStore` opens a
  `ClusteredMetadataVectorCassandraTable(primary_key_type=["TEXT", "TEXT"],
  metadata_indexing=("default_to_searchable", ["_node_content"]))` with partition_id = the node's
  ref_doc_id; it reads vector tables only.
- cassio: the tool's own defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session

from .cql import qualified
from .errors import UsageError
from .job import Job, MetadataIndexing
from .legacy import LegacyTable

LABELS = {"cassio": "cassio 0.1.x", "langchain": "LangChain", "llamaindex": "LlamaIndex"}
KINDS = {
    "cassio": ("vector", "history", "kvcache"),
    "langchain": ("vector", "history", "kvcache"),
    "llamaindex": ("vector",),
}

# What CassandraVectorStore hard-codes: every metadata key indexed but the node's JSON.
LLAMAINDEX_INDEXING = MetadataIndexing("deny", ("_node_content",))
LLAMAINDEX_PARTITION_FIELD = "ref_doc_id"

# LangChain's default table names: chat history (0.0.2xx and today), LLM cache (today, and the KVCache draft).
LANGCHAIN_TABLES = {"history": ("message_store",), "kvcache": ("langchain_llm_cache", "langchain_response_cache")}

SAMPLE_ROWS = 20  # rows read to recognise a framework's table
_HEX32 = re.compile(r"[0-9a-f]{32}")  # LangChain's ids: uuid4().hex (0.0.225+) or md5 of the text (0.0.210-0.0.220)
_MD5_PAIR = re.compile(r"\['[0-9a-f]{32}', '[0-9a-f]{32}'\]")  # str([md5(llm_string), md5(prompt)])


def _refuse(framework: str, problem: str) -> NoReturn:
    raise UsageError(f"--for {framework}: {problem}")


def preset(job: Job, source: LegacyTable) -> Job:
    """The job with its framework's target settings filled in where the user gave none.

    Refuses, with one line, a source kind the framework cannot read, and a setting the user
    gave that would make a table its reader cannot open.
    """
    framework = job.target_framework
    if framework == "cassio":
        return job
    label = LABELS[framework]
    if source.kind not in KINDS[framework]:
        _refuse(
            framework,
            f"{source.name} is a {source.layout.label}; {label} reads only vector tables (CassandraVectorStore):"
            " migrate it with --for cassio or --for langchain",
        )
    if source.kind != "vector":
        return job  # LangChain's chat history and LLM cache read the tables the tool makes for them
    uuid_keys = source.key_type in ("uuid", "timeuuid")
    changes: dict[str, Any] = {}
    if "target_key_type" not in job.explicit:
        changes["target_key_type"] = "text" if uuid_keys else "same"
    elif job.target_key_type == "same" and uuid_keys:
        _refuse(
            framework,
            f"{label}'s reader has text keys and cannot use {source.name}'s {source.key_type} keys kept as they are:"
            " unset --key-type (TARGET_KEY_TYPE), the preset turns them into text",
        )
    if framework == "langchain":
        if job.partition_id is not None or job.partition_field is not None:
            _refuse(
                framework,
                "LangChain's Cassandra vector store has no partition: unset --partition-id and --partition-field"
                " (TARGET_PARTITION_ID, TARGET_PARTITION_FIELD)",
            )
    else:
        if job.partition_id is not None or job.partition_field not in (None, LLAMAINDEX_PARTITION_FIELD):
            _refuse(
                framework,
                "CassandraVectorStore puts each node in the partition of its ref_doc_id (delete(ref_doc_id) deletes"
                " it): unset --partition-id and --partition-field (TARGET_PARTITION_ID, TARGET_PARTITION_FIELD)",
            )
        if "metadata_indexing" in job.explicit and job.metadata_indexing != LLAMAINDEX_INDEXING:
            _refuse(
                framework,
                f"CassandraVectorStore fixes its metadata indexing ({LLAMAINDEX_INDEXING}: every key but the node's"
                f" JSON), not {job.metadata_indexing}: unset --metadata-indexing (METADATA_INDEXING)",
            )
        changes.update(partition_field=LLAMAINDEX_PARTITION_FIELD, metadata_indexing=LLAMAINDEX_INDEXING)
    return replace(job, **changes)


def row_problem(framework: str, document: str | None, metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why the framework's reader cannot take this vector row (a reject reason and its detail), or None."""
    if framework == "cassio":
        return None
    label = LABELS[framework]
    if document is None:
        return "document_null", f"document is NULL: {label}'s reader fails on a row without text"
    if framework == "llamaindex":
        content = metadata.get("_node_content")
        if not isinstance(content, str):
            return "node_content_missing", "metadata has no _node_content string: LlamaIndex rebuilds the node from it"
        if not isinstance(_json(content), dict):
            return "node_content_malformed", "_node_content is not a node's JSON object: LlamaIndex cannot rebuild it"
    return None


@dataclass(frozen=True)
class Detection:
    framework: str
    evidence: str  # what in the sampled rows (or the table's name) says so


def sample_rows(session: Session, source: LegacyTable, limit: int = SAMPLE_ROWS) -> list[dict[str, Any]]:
    """A few rows of the source (its first rows in token order), without their vectors; [] if they cannot be read."""
    columns = [c for c in source.layout.columns if c != "embedding_vector"]
    try:
        rows = session.execute(
            f"SELECT {', '.join(columns)} FROM {qualified(source.keyspace, source.table)} LIMIT {limit}"
        )
    except (DriverException, NoHostAvailable):
        return []  # only a hint is lost: the copy retries its own reads
    return [dict(zip(columns, row)) for row in rows]


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _is_node(metadata_blob: Any) -> bool:
    metadata = _json(metadata_blob)
    return isinstance(metadata, dict) and isinstance(metadata.get("_node_content"), str) and "ref_doc_id" in metadata


def _is_message(blob: Any) -> bool:
    message = _json(blob)
    return (
        isinstance(message, dict)
        and isinstance(message.get("type"), str)
        and isinstance(message.get("data"), dict)
        and "content" in message["data"]
    )


def detect(source: LegacyTable, rows: Sequence[Mapping[str, Any]]) -> Detection | None:
    """Which framework wrote the source, judged from a few of its rows and its name; None: no sign of one.

    A sign counts when at least half of the sampled rows show it.
    """

    def most(count: int) -> bool:
        return count > 0 and 2 * count >= len(rows)

    def of(count: int) -> str:
        return f"{count} of {len(rows)} sampled rows"

    if source.kind == "vector":
        nodes = sum(_is_node(r.get("metadata_blob")) for r in rows)
        if most(nodes):
            return Detection("llamaindex", f"metadata with _node_content and ref_doc_id in {of(nodes)}")
        ids = sum(bool(_HEX32.fullmatch(str(r.get("document_id")))) for r in rows) if source.key_type == "text" else 0
        if most(ids):
            return Detection("langchain", f"text ids of 32 hex digits, as LangChain made them, in {of(ids)}")
        return None
    if source.kind == "history":
        messages = sum(_is_message(r.get("blob")) for r in rows)
        if most(messages):
            return Detection("langchain", f"LangChain message JSON in {of(messages)}")
    else:
        keyed = sum(r.get("key_desc") == "llm_string/prompt" for r in rows)
        if most(keyed):
            hashed = sum(bool(_MD5_PAIR.fullmatch(str(r.get("cache_key")))) for r in rows)
            note = "" if hashed == keyed else " (some keys are not md5 hashes: CassandraCache never looks those up)"
            return Detection("langchain", f"keys llm_string/prompt in {of(keyed)}{note}")
    if source.table in LANGCHAIN_TABLES[source.kind]:
        return Detection("langchain", f"LangChain's default table name {source.table!r}")
    return None


def detection_line(source: LegacyTable, found: Detection | None, chosen: str) -> str | None:
    """What to tell the user before copying; the chosen preset stays as it is."""
    if found is None:
        if chosen == "llamaindex":
            return (
                f"source {source.name}: no LlamaIndex nodes among the sampled rows (metadata with _node_content and"
                " ref_doc_id): rows without them are rejected"
            )
        return None
    label = LABELS[found.framework]
    said = f"source {source.name} looks like a {label} table ({found.evidence})"
    if found.framework == chosen:
        return f"{said}: --for {chosen} fits"
    if found.framework == "llamaindex":
        why = "the layout LlamaIndex's reader opens"
    elif source.kind == "vector":
        why = "the same table, without the rows LangChain cannot read, and how LangChain opens it"
    else:
        why = "the same table, and how LangChain opens it"
    return f"{said}: use --for {found.framework} ({why}); this run goes on with --for {chosen}"
