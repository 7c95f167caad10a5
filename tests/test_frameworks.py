"""LangChain and LlamaIndex tables of 2023, migrated with one preset flag, read back by today's packages.

Each table is written the way the framework wrote it in 2023: through cassio 0.0.7's own classes,
with that framework's row shapes (tests/old_packages.py). It is migrated with `migrate.py --for ...`
and verified; then the lines the migration printed to open it (its handoff) are run as a user
pastes them, and the result is read through langchain-community 0.4.x and
llama-index-vector-stores-cassandra 0.6.x (requirements-frameworks.txt). Offline: explicit
vectors, a fixed Embeddings class and MockEmbedding; no model is downloaded, no tracing is sent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Session

from cassio_migration.cql import qualified
from cassio_migration.legacy import create_history_cql, create_table_cql
from tests.helpers import PORT, one_error_line, read_report, schema
from tests.old_packages import OldPackages, llama_index_rows, write_2023

os.environ.setdefault("LANGSMITH_TRACING", "false")  # nothing is sent anywhere
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")

MISSING = [
    p
    for p in ("langchain_community", "llama_index.vector_stores.cassandra")
    if not importlib.util.find_spec(p.split(".")[0])
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING} (pip install -r requirements-frameworks.txt)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # langchain-community is being sunset, and says so
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

DIM = 16


def unit(i: int, tilt: float = 0.0) -> list[float]:
    """A vector mostly along axis i, a little along i+1."""
    v = [0.0] * DIM
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = tilt
    return v


Tables = dict[str, str]


def migrate(
    bundle: Callable[..., Any], tmp_path: Path, *args: str, expect: int = 0, **tables: str
) -> tuple[dict[str, Any], str]:
    """migrate.py as a user runs it (progress lines on); its JSON report and its output."""
    report = tmp_path / f"report-{uuid.uuid4().hex[:8]}.json"
    result = bundle("migrate.py", *args, "--report", str(report), **tables)
    assert result.code == expect, result.out + result.err
    return read_report(report), result.out


def printed(handoff: dict[str, Any], out: str) -> None:
    """The handoff is printed after the summary, the code indented."""
    assert f"open the result with {handoff['class']} (--for {handoff['framework']}):" in out
    assert "\n".join(f"    {line}" if line else "" for line in handoff["code"].splitlines()) in out


def rejects(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]


@pytest.fixture
def paste() -> Iterator[Callable[..., dict[str, Any]]]:
    """Run a handoff's lines as a user pastes them (with `names` they refer to); the names they define."""
    opened: list[dict[str, Any]] = []

    def run(handoff: dict[str, Any], **names: Any) -> dict[str, Any]:
        namespace = dict(names)
        exec(compile(handoff["code"], "open_with", "exec"), namespace)
        opened.append(namespace)
        return namespace

    yield run
    for namespace in opened:
        namespace["session"].cluster.shutdown()


# --- LangChain: vector store ------------------------------------------------------------------------

DOCS = [
    ("Cats sleep most of the day.", unit(0), {"source": "cats.txt", "page": 1, "lang": "en"}),
    ("Cats purr when content.", unit(0, 0.3), {"source": "cats.txt", "page": 2, "lang": "en"}),
    ("Dogs bark at strangers.", unit(1), {"source": "dogs.txt", "page": 1, "lang": "en"}),
    ("Les chiens aboient.", unit(1, 0.2), {"source": "dogs.txt", "page": 1, "lang": "fr"}),
    ("Fish swim — 🐟 ünïcode.", unit(2), {"source": "fish.txt", "tags": ["a", "b"], "extra": {"k": 1}, "n": None}),
    ("No metadata at all.", unit(3), {}),
]
QUERIES = {"sleepy cats": unit(0, 0.1), "barking": unit(1, 0.05)}


def embeddings() -> Any:
    """A LangChain Embeddings that knows the texts above (offline, deterministic)."""
    from langchain_core.embeddings import Embeddings

    known = {**{text: vector for text, vector, _ in DOCS}, **QUERIES}

    class Fixed(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.embed_query(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return known.get(text, unit(DIM - 1))

    return Fixed()


def as_read(metadata: dict[str, Any]) -> dict[str, str]:
    """Metadata as cassio 0.1.x gives it back: every value a string."""
    from cassio.table.mixins.metadata import MetadataMixin

    return {k: MetadataMixin._coerce_string(v) for k, v in metadata.items()}


def seed_langchain_vectors(
    old_packages: OldPackages, keyspace: str, key_type: str, extra: list[dict[str, Any]] | None = None
) -> list[str]:
    """The vector store of langchain 0.0.225-0.0.279: VectorTable(..., primary_key_type="TEXT"), ids uuid4().hex,
    put_async(text, vector, id, metadata, ttl); key_type UUID is a direct cassio 0.0.7 user (its default)."""
    ids = [uuid.uuid4().hex if key_type == "TEXT" else str(uuid.uuid4()) for _ in DOCS]
    rows = [{"id": i, "text": t, "vector": v, "metadata": md} for i, (t, v, md) in zip(ids, DOCS)]
    write_2023(
        old_packages.cassio("0.0.7"),
        PORT,
        keyspace,
        "legacy_lc",
        "vector",
        [*rows, *(extra or [])],
        dimension=DIM,
        key_type=key_type,
    )
    return ids


def test_langchain_vector_store_reads_the_migrated_table(
    bundle, session: Session, keyspace: str, tmp_path: Path, old_packages: OldPackages, paste
) -> None:
    null_id = uuid.uuid4().hex
    null_row = {"id": null_id, "text": None, "vector": unit(5), "metadata": {"source": "null.txt"}}
    ids = seed_langchain_vectors(old_packages, keyspace, "TEXT", [null_row])
    tables = {"OLD_TABLE": "legacy_lc", "TARGET_TABLE": "lc_docs"}
    report, out = migrate(bundle, tmp_path, "--for", "langchain", expect=1, **tables)
    assert (
        f"source {keyspace}.legacy_lc looks like a LangChain table (text ids of 32 hex digits, as LangChain made"
        " them, in 7 of 7 sampled rows): --for langchain fits"
    ) in out
    assert (report["rows_read"], report["rows_written"], report["rows_rejected"]) == (7, 6, 1)
    assert [(r["key"], r["reason"]) for r in rejects(report)] == [(null_id, "document_null")]
    verified, verify_out = migrate(bundle, tmp_path, "--for", "langchain", "--verify", **tables)
    assert (verified["status"], verified["matching"], verified["rejected"]) == ("clean", 6, 1)
    handoff = report["open_with"]
    assert handoff == verified["open_with"] and handoff["class"] == "langchain_community.vectorstores.Cassandra"
    printed(handoff, out)
    printed(handoff, verify_out)

    # the table is the one today's LangChain creates
    from langchain_community.vectorstores import Cassandra

    Cassandra(embedding=embeddings(), session=session, keyspace=keyspace, table_name="lc_fresh")
    assert schema(session, keyspace, "lc_docs") == schema(session, keyspace, "lc_fresh")

    store = paste(handoff, embeddings=embeddings())["store"]
    hits = store.similarity_search_with_score_id_by_vector(QUERIES["sleepy cats"], k=3)
    assert [h[2] for h in hits[:2]] == ids[:2]
    assert [h[0].page_content for h in hits[:2]] == [DOCS[0][0], DOCS[1][0]]
    assert hits[0][0].id == ids[0] and hits[0][0].metadata == {"source": "cats.txt", "page": "1.0", "lang": "en"}
    assert 0.99 < hits[0][1] <= 1.0
    assert [d.page_content for d in store.similarity_search("barking", k=2)] == [DOCS[2][0], DOCS[3][0]]
    assert {d.id for d in store.similarity_search("barking", k=5, filter={"lang": "fr"})} == {ids[3]}
    assert {d.id for d in store.similarity_search("barking", k=9, filter={"page": 1})} == {ids[0], ids[2], ids[3]}
    for i, (text, _, metadata) in zip(ids, DOCS):
        doc = store.get_by_document_id(i)
        assert (doc.page_content, doc.metadata) == (text, as_read(metadata))
    assert store.get_by_document_id(null_id) is None  # rejected: LangChain fails on a NULL text

    # the reject, fixed in the rejects file, replays
    fixed = [{**r, "row": {**r["row"], "document": "A text at last."}} for r in rejects(report)]
    replay = tmp_path / "fixed.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in fixed))
    migrate(bundle, tmp_path, "--for", "langchain", "--replay", str(replay), **tables)
    assert store.get_by_document_id(null_id).page_content == "A text at last."
    # the application goes on writing to the migrated table
    new = store.add_texts(["A new cat document."], metadatas=[{"source": "cats.txt"}])
    assert store.delete([ids[0]])
    got = store.similarity_search_with_score_id_by_vector(QUERIES["sleepy cats"], k=9, filter={"source": "cats.txt"})
    assert {h[2] for h in got} == {ids[1], *new}


def test_langchain_vector_store_on_uuid_keys_with_its_own_metadata_indexing(
    bundle, session: Session, keyspace: str, tmp_path: Path, old_packages: OldPackages, paste
) -> None:
    """A direct cassio user's UUID keys: the preset makes them text; an explicit --metadata-indexing wins, and
    the handoff passes it to the reader. --key-type same would keep UUID keys LangChain cannot read: refused."""
    ids = seed_langchain_vectors(old_packages, keyspace, "UUID")
    tables = {"OLD_TABLE": "legacy_lc", "TARGET_TABLE": "lc_docs"}
    refused = bundle("migrate.py", "--for", "langchain", "--key-type", "same", **tables)
    assert refused.code == 2 and "LangChain's reader has text keys" in one_error_line(refused.err)
    flags = ("--for", "langchain", "--metadata-indexing", "allow:lang,source")
    report, out = migrate(bundle, tmp_path, *flags, **tables)
    assert "looks like" not in out  # UUID keys: not LangChain's, and nothing says otherwise
    assert report["rows_written"] == len(DOCS)
    assert migrate(bundle, tmp_path, *flags, "--verify", **tables)[0]["status"] == "clean"
    forgot = bundle("migrate.py", "--verify", **tables)  # without the flags the copy ran with
    assert forgot.code == 2 and "--verify takes the flags the copy ran with" in one_error_line(forgot.err)
    handoff = report["open_with"]
    assert handoff["arguments"]["metadata_indexing"] == ["allowlist", ["lang", "source"]]  # a tuple, in JSON
    store = paste(handoff, embeddings=embeddings())["store"]
    hits = store.similarity_search_with_score_id_by_vector(QUERIES["barking"], k=2)
    assert [h[2] for h in hits] == ids[2:4]  # the ids as text: str(uuid)
    assert {d.id for d in store.similarity_search("barking", k=9, filter={"source": "dogs.txt"})} == set(ids[2:4])
    with pytest.raises(ValueError, match="Non-indexed metadata fields cannot be used in queries"):
        store.similarity_search("barking", k=9, filter={"page": 1})
    assert store.get_by_document_id(ids[4]).metadata == as_read(DOCS[4][2])  # both parts merged back
    store.add_texts(["new"], ids=[uuid.uuid4().hex])  # text keys: today's ids go in


# --- LangChain: chat history ------------------------------------------------------------------------


def message_2023(kind: str, content: str, **extra: Any) -> str:
    """`json.dumps(_message_to_dict(message))` of langchain 0.0.2xx: {"type", "data": message.dict()} (pydantic 1:
    content, additional_kwargs, and `example` for human and ai messages, `name` for function, `role` for chat)."""
    data: dict[str, Any] = {"content": content, "additional_kwargs": extra.pop("additional_kwargs", {})}
    if kind in ("human", "ai"):
        data["example"] = extra.pop("example", False)
    return json.dumps({"type": kind, "data": {**data, **extra}})


SESSIONS = {
    "alice": [
        message_2023("system", "You are a helpful assistant."),
        message_2023("human", "Hi! What's 2+2?"),
        message_2023("ai", "4 — obviously ✓", additional_kwargs={"function_call": {"name": "calc", "arguments": "{}"}}),
        message_2023("function", '{"result": 4}', name="calc"),
        message_2023("chat", "as a pirate: arr", role="pirate"),
        message_2023("human", "again", example=True),
    ],
    "bob": [message_2023("human", f"message {n}") for n in range(30)],
}


def test_langchain_chat_history_reads_the_migrated_messages_in_order(
    bundle, session: Session, keyspace: str, tmp_path: Path, old_packages: OldPackages, paste
) -> None:
    """langchain 0.0.220-0.0.279: StoredBlobHistory(session, keyspace, "message_store").store(session_id, blob)."""
    from langchain_core.messages import AIMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage

    rows = [{"session_id": s, "blob": b} for s, blobs in SESSIONS.items() for b in blobs]
    assert write_2023(old_packages.cassio("0.0.7"), PORT, keyspace, "message_store", "history", rows) == SESSIONS
    tables = {"OLD_TABLE": "message_store", "TARGET_TABLE": "message_store_v1"}
    report, out = migrate(bundle, tmp_path, "--for", "langchain", **tables)
    assert "looks like a LangChain table (LangChain message JSON in 20 of 20 sampled rows): --for langchain fits" in out
    assert report["rows_written"] == 36
    assert migrate(bundle, tmp_path, "--for", "langchain", "--verify", **tables)[0]["matching"] == 36
    handoff = report["open_with"]
    printed(handoff, out)
    assert handoff["class"] == "langchain_community.chat_message_histories.CassandraChatMessageHistory"
    # the user puts a session id of theirs in place of the placeholder
    opened = paste({**handoff, "code": handoff["code"].replace('"SESSION_ID"', '"alice"')})
    msgs = opened["messages"]
    assert [type(m) for m in msgs] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        FunctionMessage,
        ChatMessage,
        HumanMessage,
    ]
    assert [m.content for m in msgs] == [json.loads(b)["data"]["content"] for b in SESSIONS["alice"]]
    assert msgs[2].additional_kwargs == {"function_call": {"name": "calc", "arguments": "{}"}}
    assert (msgs[3].name, msgs[4].role, msgs[5].example) == ("calc", "pirate", True)
    history = opened["CassandraChatMessageHistory"]
    bob = history("bob", session=session, keyspace=keyspace, table_name="message_store_v1")
    assert [m.content for m in bob.messages] == [f"message {n}" for n in range(30)]
    assert history("nobody", session=session, keyspace=keyspace, table_name="message_store_v1").messages == []
    opened["history"].add_message(AIMessage(content="a new answer"))  # lands after the migrated ones
    assert [m.content for m in opened["history"].messages][-2:] == ["again", "a new answer"]


# --- LangChain: LLM cache ---------------------------------------------------------------------------


def md5(text: str) -> str:
    """LangChain's `_hash` of its cache keys."""
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def generations_2023(*texts: str, info: dict[str, Any] | None = None) -> str:
    """`json.dumps([generation.dict() for generation in generations])` of langchain 0.0.2xx."""
    return json.dumps([{"text": t, "generation_info": info} for t in texts])


def test_langchain_llm_cache_hits_the_migrated_entries(
    bundle, session: Session, keyspace: str, tmp_path: Path, old_packages: OldPackages, paste
) -> None:
    """The KVCache-based CassandraCache (no langchain release shipped it): KVCache(..., keys=["llm_string",
    "prompt"]).put({"llm_string": md5(llm_string), "prompt": md5(prompt)}, json.dumps([g.dict() ...]))."""
    from langchain_community.llms.fake import FakeListLLM
    from langchain_core.globals import set_llm_cache
    from langchain_core.language_models.llms import get_prompts
    from langchain_core.outputs import Generation

    llm = FakeListLLM(responses=["the model's own answer"])
    _, fake_llm_string, _, _ = get_prompts({**llm._dict_for_compat(), "stop": None}, ["Tell me a joke"])
    other = "[('_type', 'openai'), ('model_name', 'text-davinci-003'), ('stop', None), ('temperature', 0.7)]"
    entries = {
        (fake_llm_string, "Tell me a joke"): generations_2023("A cached joke."),
        (other, "What's 2+2?"): generations_2023("4"),
        (other, 'quote " and \\ backslash\nnewline, ünïcode ✓'): generations_2023(
            "ok", "two", info={"finish_reason": "stop"}
        ),
    }
    rows = [{"key": {"llm_string": md5(m), "prompt": md5(p)}, "value": v} for (m, p), v in entries.items()]
    cassio = old_packages.cassio("0.0.7")
    old = write_2023(cassio, PORT, keyspace, "langchain_response_cache", "kvcache", rows, keys=["llm_string", "prompt"])
    assert old == list(entries.values())
    tables = {"OLD_TABLE": "langchain_response_cache", "TARGET_TABLE": "langchain_llm_cache"}
    report, out = migrate(bundle, tmp_path, "--for", "langchain", **tables)
    assert "looks like a LangChain table (keys llm_string/prompt in 3 of 3 sampled rows): --for langchain fits" in out
    assert migrate(bundle, tmp_path, "--for", "langchain", "--verify", **tables)[0]["matching"] == 3
    handoff = report["open_with"]
    printed(handoff, out)
    assert handoff["class"] == "langchain_community.cache.CassandraCache"
    try:
        cache = paste(handoff)["cache"]  # and set_llm_cache(cache)
        assert llm.invoke("Tell me a joke") == "A cached joke."  # served by the migrated entry
        assert llm.invoke("Something else") == "the model's own answer"
        assert cache.lookup("What's 2+2?", other) == [Generation(text="4")]
        assert cache.lookup('quote " and \\ backslash\nnewline, ünïcode ✓', other) == [
            Generation(text="ok", generation_info={"finish_reason": "stop"}),
            Generation(text="two", generation_info={"finish_reason": "stop"}),
        ]
        assert cache.lookup("What's 2+2?", fake_llm_string) is None  # another model: a miss
        cache.update("new prompt", other, [Generation(text="fresh")])
        assert cache.lookup("new prompt", other) == [Generation(text="fresh")]
    finally:
        set_llm_cache(None)


# --- LlamaIndex -------------------------------------------------------------------------------------

NODES = [  # (version of llama_index that made the row, node, vector)
    ("0.7.20", {"text": "Cats sleep most of the day.", "metadata": {"file_name": "a.txt", "page": 1}, "ref_doc_id": "doc-a"}, unit(0)),
    ("0.7.20", {"text": "Cats purr when content.", "metadata": {"file_name": "a.txt", "page": 2}, "ref_doc_id": "doc-a"}, unit(0, 0.3)),
    ("0.7.20", {"text": "Cats have whiskers.", "metadata": {"file_name": "a.txt", "page": 3}, "ref_doc_id": "doc-a"}, unit(0, 0.6)),
    ("0.8.69", {"text": "Dogs bark — ünïcode ✓.", "metadata": {"file_name": "b.txt", "page": 1}, "ref_doc_id": "doc-b"}, unit(1)),
    ("0.8.69", {"text": "Dogs fetch.", "metadata": {"file_name": "b.txt", "score": 0.5}, "ref_doc_id": "doc-b"}, unit(1, 0.4)),
    # a node with no source document: LlamaIndex stores ref_doc_id "None" (a string)
    ("0.8.69", {"text": "An orphan node.", "metadata": {}, "ref_doc_id": None}, unit(2)),
]  # fmt: skip


def partitions(session: Session, keyspace: str, table: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for r in session.execute(f"SELECT partition_id, row_id FROM {qualified(keyspace, table)}"):
        found.setdefault(r.partition_id, set()).add(r.row_id)
    return found


def test_llamaindex_vector_store_reads_the_migrated_nodes(
    bundle, session: Session, keyspace: str, tmp_path: Path, old_packages: OldPackages, paste
) -> None:
    """The July 2023 draft of LlamaIndex's Cassandra store (never released): a cassio 0.0.7 VectorTable,
    document_id = the node id, document = its text, metadata = node_to_metadata_dict(node, remove_text=True,
    flat_metadata=True) of llama_index 0.7/0.8; plus three rows LlamaIndex cannot read."""
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import NodeRelationship, QueryBundle, TextNode
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
    from llama_index.vector_stores.cassandra import CassandraVectorStore

    made: list[dict[str, Any]] = []
    for version in ("0.7.20", "0.8.69"):
        nodes = [{"id": str(uuid.uuid4()), **node} for v, node, _ in NODES if v == version]
        made += llama_index_rows(old_packages.llama_index(version), nodes)
    ids = [m["id"] for m in made]
    assert "_node_type" not in made[0]["metadata"] and made[3]["metadata"]["_node_type"] == "TextNode"
    rows = [{**m, "vector": vector} for m, (_, _, vector) in zip(made, NODES)]
    unreadable = {
        "foreign": ({"a": 1}, "x", "partition_field_missing"),  # not LlamaIndex's: no ref_doc_id
        "half": ({"ref_doc_id": "doc-z"}, "no node content", "node_content_missing"),
        "nulldoc": ({**made[0]["metadata"], "ref_doc_id": "doc-n"}, None, "document_null"),
    }
    rows += [{"id": k, "text": text, "vector": unit(7), "metadata": md} for k, (md, text, _) in unreadable.items()]
    write_2023(
        old_packages.cassio("0.0.7"), PORT, keyspace, "legacy_li", "vector", rows, dimension=DIM, key_type="TEXT"
    )
    tables = {"OLD_TABLE": "legacy_li", "TARGET_TABLE": "li_nodes"}

    # a new user, with the defaults, is told before copying which preset makes the table LlamaIndex's
    _, told = migrate(bundle, tmp_path, OLD_TABLE="legacy_li", TARGET_TABLE="li_flat")
    assert (
        f"source {keyspace}.legacy_li looks like a LlamaIndex table (metadata with _node_content and ref_doc_id in"
        " 7 of 9 sampled rows): use --for llamaindex (the layout LlamaIndex's reader opens); this run goes on with"
        " --for cassio"
    ) in told
    flat = CassandraVectorStore(table="li_flat", embedding_dimension=DIM, session=session, keyspace=keyspace)
    assert flat.query(VectorStoreQuery(query_embedding=unit(0), similarity_top_k=1)).ids == [ids[0]]  # reads work,
    with pytest.raises(Exception, match="Undefined column name partition_id"):
        flat.delete("doc-a")  # but not LlamaIndex's delete, nor its add
    with pytest.raises(Exception, match="Undefined column name partition_id"):
        flat.add([TextNode(text="n", id_="n1", embedding=unit(0))])

    report, out = migrate(bundle, tmp_path, "--for", "llamaindex", expect=1, **tables)
    assert "looks like a LlamaIndex table" in out and "--for llamaindex fits" in out
    assert (report["rows_written"], report["rows_rejected"]) == (6, 3)
    assert sorted((r["key"], r["reason"]) for r in rejects(report)) == sorted((k, v[2]) for k, v in unreadable.items())
    verified, _ = migrate(bundle, tmp_path, "--for", "llamaindex", "--verify", **tables)
    assert (verified["status"], verified["matching"], verified["rejected"]) == ("clean", 6, 3)
    assert partitions(session, keyspace, "li_nodes") == {
        "doc-a": set(ids[:3]),
        "doc-b": set(ids[3:5]),
        "None": {ids[5]},
    }

    handoff = report["open_with"]
    printed(handoff, out)
    assert handoff["class"] == "llama_index.vector_stores.cassandra.CassandraVectorStore"
    opened = paste(handoff, embed_model=MockEmbedding(embed_dim=DIM))
    store, index = opened["store"], opened["index"]
    # the table is the one today's LlamaIndex creates
    opened["CassandraVectorStore"](table="li_fresh", embedding_dimension=DIM, session=session, keyspace=keyspace)
    assert schema(session, keyspace, "li_nodes") == schema(session, keyspace, "li_fresh")

    found = store.query(VectorStoreQuery(query_embedding=unit(0, 0.1), similarity_top_k=3))
    assert found.ids == ids[:3] and [n.node_id for n in found.nodes] == ids[:3]
    assert [n.get_content() for n in found.nodes] == [node["text"] for _, node, _ in NODES[:3]]
    assert found.nodes[0].metadata == {"file_name": "a.txt", "page": 1}  # rebuilt from _node_content: types kept
    assert found.nodes[0].ref_doc_id == "doc-a"
    assert found.nodes[0].relationships[NodeRelationship.SOURCE].node_id == "doc-a"
    assert found.similarities[0] > 0.99

    def matching(key: str, value: Any) -> set[str]:
        filters = MetadataFilters(filters=[MetadataFilter(key=key, value=value)])
        return set(store.query(VectorStoreQuery(query_embedding=unit(0), similarity_top_k=10, filters=filters)).ids)

    assert matching("file_name", "b.txt") == set(ids[3:5])
    assert matching("page", 2) == {ids[1]}  # numbers compare as cassio's strings, on both sides
    assert matching("ref_doc_id", "None") == {ids[5]}
    hits = index.as_retriever(similarity_top_k=2).retrieve(QueryBundle(query_str="dogs", embedding=unit(1)))
    assert [h.node.node_id for h in hits] == ids[3:5]

    store.delete("doc-a")  # deletes the document's partition: its 3 nodes
    assert partitions(session, keyspace, "li_nodes") == {"doc-b": set(ids[3:5]), "None": {ids[5]}}
    node = TextNode(text="A new cat node.", id_="new-node", embedding=unit(0), metadata={"file_name": "c.txt"})
    node.relationships[NodeRelationship.SOURCE] = TextNode(id_="doc-c").as_related_node_info()
    store.add([node])
    assert store.query(VectorStoreQuery(query_embedding=unit(0), similarity_top_k=1)).ids == ["new-node"]


# --- what is refused, and tables that need no migration ---------------------------------------------


def test_presets_that_cannot_apply_and_tables_already_in_the_new_layout(
    bundle, session: Session, keyspace: str
) -> None:
    from langchain_community.chat_message_histories import CassandraChatMessageHistory
    from llama_index.vector_stores.cassandra import CassandraVectorStore

    session.execute(create_history_cql(keyspace, "message_store"))
    session.execute(create_table_cql(keyspace, "legacy", "text", DIM))
    for args, tables, said in [
        (("--for", "llamaindex"), {"OLD_TABLE": "message_store"}, f"error: --for llamaindex: {keyspace}.message_store is a legacy cassio chat history table (0.0.x StoredBlobHistory); LlamaIndex reads only vector tables"),
        (("--for", "langchain", "--partition-field", "tenant"), {}, "error: --for langchain: LangChain's Cassandra vector store has no partition"),
        (("--for", "llamaindex", "--metadata-indexing", "all"), {}, "error: --for llamaindex: CassandraVectorStore fixes its metadata indexing"),
    ]:  # fmt: skip
        result = bundle("migrate.py", *args, **tables)
        assert result.code == 2 and one_error_line(result.err).startswith(said), result.err

    # tables today's frameworks write are already in cassio 0.1.x's layout: nothing to migrate
    CassandraVectorStore(table="li_today", embedding_dimension=DIM, session=session, keyspace=keyspace)
    CassandraChatMessageHistory("s", session=session, keyspace=keyspace, table_name="history_today")
    for table, who in (
        ("li_today", "LlamaIndex's CassandraVectorStore"),
        ("history_today", "CassandraChatMessageHistory"),
    ):
        result = bundle("migrate.py", OLD_TABLE=table, TARGET_TABLE=f"{table}_v1")
        line = one_error_line(result.err)
        assert result.code == 2 and f"{keyspace}.{table} is already in the cassio 0.1.x layout" in line, line
        assert who in line and "nothing to migrate" in line
