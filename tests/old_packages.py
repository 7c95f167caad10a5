"""The 2023 packages beside today's: cassio 0.0.x, and the node schema of llama_index 0.7/0.8.

cassio 0.0.x and 0.1.x cannot be installed side by side, so the old one goes into a folder of
its own (`pip install --no-deps --target`: it needs only the driver, which we have) and runs in
a subprocess with that folder first on its path.

llama_index 0.7.x/0.8.x cannot be imported next to today's llama-index-core (the same package
name, pydantic 1, the whole of 2023 LangChain behind its __init__). Four of its modules decide
what a 2023 node row holds: schema.py (the node classes), utils.py (helpers of schema.py),
bridge/pydantic.py and vector_stores/utils.py (`node_to_metadata_dict`). They are taken from
the real wheel into a folder of their own, pydantic imports pointed at `pydantic.v1` (what
pydantic 1 was) and the LangChain bridge stubbed; the real 2023 `node_to_metadata_dict` then
runs in a subprocess on that folder. Only the wheels are downloaded (PyPI, once a session).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True)


class OldPackages:
    """The 2023 packages of one test session, each installed once into `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def cassio(self, version: str) -> Path:
        target = self.root / f"cassio-{version}"
        if not (target / "cassio").is_dir():
            _pip("install", "--no-deps", "--target", str(target), f"cassio=={version}")
        return target

    def llama_index(self, version: str) -> Path:
        """A folder with the node schema of llama_index==version, importable as `llama_index`."""
        target = self.root / f"llama_index-{version}"
        pkg = target / "llama_index"
        if (pkg / "schema.py").exists():
            return target
        wheels = self.root / "wheels"
        _pip("download", "--no-deps", "-d", str(wheels), f"llama_index=={version}")
        wheel = next(wheels.glob(f"llama_index-{version}-*.whl"))
        for folder in (pkg / "bridge", pkg / "vector_stores"):
            folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in ("schema.py", "utils.py", "bridge/pydantic.py", "vector_stores/utils.py"):
                try:
                    text = z.read(f"llama_index/{name}").decode()
                except KeyError:
                    continue  # 0.7.x has no bridge/pydantic.py
                for module in ("pydantic", "pydantic.fields", "pydantic.error_wrappers"):
                    text = text.replace(
                        f"from {module} import", f"from {module.replace('pydantic', 'pydantic.v1', 1)} import"
                    )
                (pkg / name).write_text(text)
        for init in (pkg, pkg / "bridge", pkg / "vector_stores"):
            (init / "__init__.py").write_text("")
        # schema.py imports LangChain's Document only to convert to and from it
        (pkg / "bridge" / "langchain.py").write_text("class Document:  # stub: not used to build rows\n    pass\n")
        return target


def run_old(folder: Path, code: str, stdin: str | None = None, timeout: float = 300) -> str:
    """Run code with the old package's folder first on the path; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(folder)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=stdin,
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(f"the 2023 package's script failed:\n{proc.stderr}")
    return proc.stdout


_NODES = """
import json, sys
from llama_index.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.vector_stores.utils import node_to_metadata_dict
out = []
for n in json.loads(sys.stdin.read()):
    relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=n["ref_doc_id"])} if n["ref_doc_id"] else {}
    node = TextNode(id_=n["id"], text=n["text"], metadata=n["metadata"], relationships=relationships)
    try:
        metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
    except TypeError:  # 0.7.x: no flat_metadata argument
        metadata = node_to_metadata_dict(node, remove_text=True)
    out.append({"id": node.node_id, "text": node.get_content(), "metadata": metadata})
print(json.dumps(out))
"""


def llama_index_rows(folder: Path, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What 2023 llama_index made of each node: its id, text, and `node_to_metadata_dict(node, remove_text=True,
    flat_metadata=True)` (as its vector stores of the time called it), by the real code of `folder`.

    nodes: [{"id", "text", "metadata", "ref_doc_id" (or None: a node without a source document)}]
    """
    rows: list[dict[str, Any]] = json.loads(run_old(folder, _NODES, json.dumps(nodes)))
    return rows


# Each writer calls what the 2023 framework code called on cassio 0.0.x (see tests/test_frameworks.py).
_WRITER = """
import json, sys, uuid
from cassandra.cluster import Cluster
spec = json.loads(sys.stdin.read())
cluster = Cluster(["127.0.0.1"], port=spec["port"])
session = cluster.connect()
ks, table, rows = spec["keyspace"], spec["table"], spec["rows"]
if spec["kind"] == "vector":
    import cassio.vector
    t = cassio.vector.VectorTable(session, ks, table, embedding_dimension=spec["dimension"],
                                  primary_key_type=spec["key_type"])
    futures = []
    for r in rows:
        key = uuid.UUID(r["id"]) if spec["key_type"] == "UUID" else r["id"]
        # langchain 0.0.225-0.0.279: put_async(text, embedding_vector, text_id, metadata, ttl_seconds)
        futures.append(t.put_async(r["text"], r["vector"], key, r["metadata"], None))
    for f in futures:
        f.result()
elif spec["kind"] == "history":
    import cassio.history
    h = cassio.history.StoredBlobHistory(session, ks, table)
    for r in rows:  # in order: the node's now() gives each blob its time UUID
        h.store(r["session_id"], r["blob"], None)
    print(json.dumps({s: list(h.retrieve(s)) for s in sorted({r["session_id"] for r in rows})}))
else:
    import cassio.keyvalue
    kv = cassio.keyvalue.KVCache(session, ks, table, keys=spec["keys"])
    for r in rows:
        kv.put(r["key"], r["value"], None)
    print(json.dumps([kv.get(r["key"]) for r in rows]))
cluster.shutdown()
"""


def write_2023(
    cassio: Path, port: int, keyspace: str, table: str, kind: str, rows: list[dict[str, Any]], **spec: Any
) -> Any:
    """Write rows through cassio 0.0.x's own class of that kind, as the 2023 frameworks did; what 0.0.x reads back."""
    payload = {"port": port, "keyspace": keyspace, "table": table, "kind": kind, "rows": rows, **spec}
    out = run_old(cassio, _WRITER, json.dumps(payload))
    return json.loads(out) if out.strip() else None
