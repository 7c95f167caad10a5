"""How to open the migrated table: its reader's class with its arguments, as lines to paste.

A pure function of the job and its target (no database): printed after a copy and after a
clean --verify, and put in the JSON report under "open_with". The reader is the one of the
job's framework (TARGET_FRAMEWORK, --for): LangChain's classes, LlamaIndex's store, or
cassio's own table class with the arguments the tool created the table with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cassio.table.tables import MetadataVectorCassandraTable

from .job import ConnectionSpec, Job, MetadataIndexing
from .target import TargetSpec, table_arguments


@dataclass(frozen=True)
class Arg:
    """One argument of the reader's constructor."""

    name: str
    value: Any
    code: bool = False  # `value` is Python source (a name, SetupMode.OFF), not data
    comment: str = ""


@dataclass(frozen=True)
class Reader:
    cls: str  # the class, with its module
    imports: tuple[str, ...]
    args: tuple[Arg, ...]
    before: tuple[str, ...] = ()  # lines before the constructor call
    after: tuple[str, ...] = ()  # lines after it

    @property
    def name(self) -> str:
        return self.cls.rsplit(".", 1)[1]


def literal(value: Any) -> str:
    """Python source for plain data, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        items = ", ".join(literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    return repr(value)


SESSION = Arg("session", "session", code=True)
SETUP_OFF = Arg("setup_mode", "SetupMode.OFF", code=True, comment="the table exists")
SETUP_IMPORT = "from langchain_community.utilities.cassandra import SetupMode"


def _langchain_policy(policy: MetadataIndexing) -> Any:
    """The tool's metadata indexing as LangChain's documentation spells it."""
    if not policy.keys:
        return policy.mode
    return (f"{policy.mode}list", list(policy.keys))


def _langchain(spec: TargetSpec) -> Reader:
    where = (SESSION, Arg("keyspace", spec.keyspace), Arg("table_name", spec.table))
    if spec.kind == "history":
        session_id = Arg("session_id", "SESSION_ID", comment="one conversation: a session_id of the legacy table")
        return Reader(
            "langchain_community.chat_message_histories.CassandraChatMessageHistory",
            ("from langchain_community.chat_message_histories import CassandraChatMessageHistory", SETUP_IMPORT),
            (session_id, *where, SETUP_OFF),
            after=("messages = history.messages  # oldest first",),
        )
    if spec.kind == "kvcache":
        return Reader(
            "langchain_community.cache.CassandraCache",
            (
                "from langchain_community.cache import CassandraCache",
                SETUP_IMPORT,
                "from langchain_core.globals import set_llm_cache",
            ),
            (*where, SETUP_OFF),
            after=("set_llm_cache(cache)",),
        )
    embedding = Arg(
        "embedding", "embeddings", code=True, comment=f"the model that made the vectors ({spec.dimension} dimensions)"
    )
    args = [embedding, *where, SETUP_OFF]
    if spec.metadata_indexing != MetadataIndexing():
        policy = _langchain_policy(spec.metadata_indexing)
        args.append(Arg("metadata_indexing", policy, comment=f"as migrated ({spec.metadata_indexing})"))
    return Reader(
        "langchain_community.vectorstores.Cassandra",
        ("from langchain_community.vectorstores import Cassandra", SETUP_IMPORT),
        tuple(args),
    )


def _llamaindex(spec: TargetSpec) -> Reader:
    return Reader(
        "llama_index.vector_stores.cassandra.CassandraVectorStore",
        (
            "from llama_index.core import VectorStoreIndex",
            "from llama_index.vector_stores.cassandra import CassandraVectorStore",
        ),
        (Arg("table", spec.table), Arg("embedding_dimension", spec.dimension), SESSION, Arg("keyspace", spec.keyspace)),
        before=("# no setup mode: CassandraVectorStore runs CREATE ... IF NOT EXISTS itself",),
        after=(
            "index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)  # the model that made the vectors",
        ),
    )


def _cassio(spec: TargetSpec) -> Reader:
    cls, arguments = table_arguments(spec)
    before: tuple[str, ...] = ()
    args = [SESSION, Arg("keyspace", spec.keyspace), Arg("table", spec.table)]
    for name, value in arguments.items():
        if spec.kind == "kvcache" and name in ("keys", "primary_key_type"):
            code = "keys" if name == "keys" else '["TEXT"] * len(keys)'
            args.append(Arg(name, code, code=True))
        elif name == "partition_id" and value is None and spec.partition_field:
            args.append(
                Arg(name, None, comment=f"each row is in the partition its metadata {spec.partition_field!r} names")
            )
        else:
            args.append(Arg(name, value))
    args.append(Arg("skip_provisioning", True, comment="the table exists"))
    after: tuple[str, ...] = ()
    if spec.kind == "kvcache":
        before = ('keys = ["llm_string", "prompt"]  # the key names of the rows\' key_desc, \'/\'-separated',)
    elif spec.kind == "history":
        after = ("# or cassio.history.StoredBlobHistory(session, keyspace, table).retrieve(session_id), as in 0.0.x",)
    elif cls is MetadataVectorCassandraTable and spec.metadata_indexing == MetadataIndexing():
        shim = f"embedding_dimension={spec.dimension}, primary_key_type={literal(arguments['primary_key_type'])}"
        after = (f"# or cassio.vector.VectorTable(session=..., keyspace=..., table=..., {shim}): the 0.1.x shim",)
    return Reader(
        f"cassio.table.{cls.__name__}", (f"from cassio.table import {cls.__name__}",), tuple(args), before, after
    )


READERS = {"cassio": _cassio, "langchain": _langchain, "llamaindex": _llamaindex}
VARIABLE = {"history": "history", "kvcache": "cache"}  # the name the reader gets in the code; vector: store or table


def _session(c: ConnectionSpec) -> tuple[list[str], list[str]]:
    """Imports and lines that open a session where the target is (secrets from the application's environment)."""
    if c.is_astra:
        where = (
            f"secure_connect_bundle={literal(c.astra_bundle_path)}"
            if c.astra_bundle_path
            else f"database_id={literal(c.astra_db_id)}"
        )
        token = 'os.environ["ASTRA_DB_APPLICATION_TOKEN"]'
        return ["import os", "import cassio"], [
            f"cassio.init(token={token}, {where})",
            "session = cassio.config.resolve_session()",
        ]
    imports = ["from cassandra.cluster import Cluster"]
    args = [literal(list(c.contact_points)), f"port={c.port}"]
    if c.username:
        imports = ["import os", "from cassandra.auth import PlainTextAuthProvider", *imports]
        password = 'os.environ["CASSANDRA_PASSWORD"]'
        args.append(f"auth_provider=PlainTextAuthProvider({literal(c.username)}, {password})")
    line = f"session = Cluster({', '.join(args)}).connect()"
    if c.tls_ca_file:
        line += f"  # with TLS: add ssl_context=... (the CA is {c.tls_ca_file})"
    return imports, [line]


def open_with(job: Job, target: TargetSpec) -> dict[str, Any]:
    """How to open the target: {"framework", "class", "arguments", "code"} (the code: lines to paste)."""
    r = READERS[job.target_framework](target)
    imports, session = _session(job.clusters.target_side)
    variable = VARIABLE.get(target.kind, "store" if job.target_framework != "cassio" else "table")
    call = [f"{variable} = {r.name}("]
    for a in r.args:
        text = f"    {a.name}={a.value if a.code else literal(a.value)},"
        call.append(f"{text}  # {a.comment}" if a.comment else text)
    call.append(")")
    ordered = sorted(dict.fromkeys([*imports, *r.imports]), key=lambda line: (line.startswith("from"), line))
    code = "\n".join([*ordered, "", *session, *r.before, *call, *r.after])
    arguments = {a.name: a.value for a in r.args if a is not SESSION}
    return {"framework": job.target_framework, "class": r.cls, "arguments": arguments, "code": code}
