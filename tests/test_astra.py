"""The README's flow on an Astra-like database (scripts/astra-local.sh: a Cassandra 5.0 node with mutual
TLS, a token role on one keyspace and Astra's limits as guardrails, behind an SNI proxy and a metadata
service), through the driver's real cloud path: ASTRA_DB_SECURE_BUNDLE_PATH or ASTRA_DB_ID, with
ASTRA_DB_APPLICATION_TOKEN and ASTRA_DB_KEYSPACE. Each error a user can meet there, as its one line."""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.astra import AstraLocal, DevOpsApi, drop_tables, fetched_bundles_left, metadata_service, rewritten
from tests.helpers import PORT, Result, one_error_line, read_report, run_script, script_env

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]
DIM = 16


@pytest.fixture(autouse=True)
def empty_keyspace(astra: AstraLocal) -> Iterator[None]:
    """Each test starts from an empty keyspace: the database's limit of tables is shared."""
    drop_tables(astra)
    yield


def report(run: Callable[..., Result], tmp_path: Path, script: str, *args: str, expect: int = 0, **env: str) -> Any:
    path = tmp_path / f"report-{uuid.uuid4().hex[:8]}.json"
    result = run(tmp_path, script, *args, "--quiet", "--report", str(path), **env)
    assert result.code == expect, result.out + result.err
    return read_report(path)


def test_create_migrate_verify_and_re_run_through_the_bundle(astra: AstraLocal, tmp_path: Path) -> None:
    created = astra.script(tmp_path, "create.py", "--rows", "3000")
    assert created.code == 0 and "wrote 3,000 rows" in created.out, created.out + created.err
    migrated = report(astra.script, tmp_path, "migrate.py", MIGRATION_ROWS_PER_RANGE="20")
    assert (migrated["status"], migrated["rows_written"], migrated["rows_rejected"]) == ("done", 3000, 0)
    # No size estimates there: the plan comes from a sample (about 150 ranges of 20 rows), not a fixed 64.
    with astra.admin() as admin:
        estimates = admin.execute("SELECT * FROM system.size_estimates WHERE keyspace_name = %s", (astra.keyspace,))
        assert not list(estimates)
    assert 100 <= migrated["ranges"] <= 220, migrated["ranges"]
    verified = report(astra.script, tmp_path, "migrate.py", "--verify")
    assert (verified["status"], verified["matching"], verified["missing"]) == ("clean", 3000, 0)
    again = report(astra.script, tmp_path, "migrate.py")
    assert (again["pass_number"], again["rows_written"], again["rows_skipped"]) == (2, 0, 3000)
    # the token is in no output and no file of the runs
    files = [p.read_text(errors="replace") for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert not [t for t in [*files, created.out, created.err] if astra.token in t]


def test_a_database_id_is_fetched_once_a_run_and_workers_get_the_bundle_from_the_client(
    astra: AstraLocal, tmp_path: Path
) -> None:
    assert astra.script(tmp_path, "create.py", "--rows", "2000").code == 0
    db_id = str(uuid.uuid4())
    api = DevOpsApi(db_id, astra.token, astra.bundle.read_bytes())
    with api.serving() as url:
        env = {k: v for k, v in astra.script_env(tmp_path).items() if k != "ASTRA_DB_SECURE_BUNDLE_PATH"}
        env.update(ASTRA_DB_ID=db_id, ASTRA_DEVOPS_API_URL=url)
        path = tmp_path / "workers.json"
        result = run_script("migrate.py", env, tmp_path, "--workers", "2", "--quiet", "--report", str(path))
        assert result.code == 0, result.out + result.err
        done = read_report(path)
        assert (done["rows_written"], len(done["workers"])) == (2000, 2), done["workers"]
        # one download for the run: two sessions here, and none on the two workers
        assert api.asked == [f"POST /v2/databases/{db_id}/secureBundleURL", "GET /bundle.zip"]
        assert fetched_bundles_left(tmp_path) == []
        assert astra.token not in result.out + result.err

        wrong = run_script("migrate.py", {**env, "ASTRA_DB_APPLICATION_TOKEN": "AstraCS:x:y"}, tmp_path)
        assert wrong.code == 2 and one_error_line(wrong.err) == (
            "error: Astra's DevOps API refused ASTRA_DB_APPLICATION_TOKEN (HTTP 401) when asked for the"
            f" secure-connect bundle of Astra database {db_id}: use a token of the database's organization whose"
            " role may read the database"
        )
        other = str(uuid.uuid4())
        unknown = run_script("migrate.py", {**env, "ASTRA_DB_ID": other}, tmp_path)
        assert unknown.code == 2 and one_error_line(unknown.err) == (
            f"error: ASTRA_DB_ID: Astra's DevOps API knows no database {other} (HTTP 404): check the id (was it"
            " deleted?)"
        )
    gone = run_script("migrate.py", env, tmp_path)  # the API does not answer any more
    assert gone.code == 3 and one_error_line(gone.err).startswith(
        f"error: cannot download the secure-connect bundle of Astra database {db_id} from {url} (URLError:"
    )
    # --verify on two workers, with the bundle's path
    verified = report(astra.script, tmp_path, "migrate.py", "--verify", "--workers", "2")
    assert (verified["status"], verified["matching"]) == ("clean", 2000)


def test_a_self_managed_source_moves_to_an_astra_target(
    astra: AstraLocal, node: Any, keyspace: str, tmp_path: Path
) -> None:
    source = script_env(keyspace, tmp_path, port=PORT)
    assert run_script("create.py", source, tmp_path, "--rows", "1500").code == 0
    env = {
        **source,
        "TARGET_ASTRA_DB_SECURE_BUNDLE_PATH": str(astra.bundle),
        "TARGET_ASTRA_DB_APPLICATION_TOKEN": astra.token,
        "TARGET_KEYSPACE": astra.keyspace,
    }

    def run(tmp: Path, script: str, *args: str, **extra: str) -> Result:
        return run_script(script, {**env, **extra}, tmp, *args)

    moved = report(run, tmp_path, "migrate.py")
    assert (moved["rows_written"], moved["target"]) == (1500, f"{astra.keyspace}.migrated on Astra DB ({astra.bundle})")
    verified = report(run, tmp_path, "migrate.py", "--verify")
    assert (verified["status"], verified["matching"]) == ("clean", 1500)
    with astra.admin() as admin:
        assert admin.execute(f"SELECT count(*) FROM {astra.keyspace}.migrated").one()[0] == 1500


def llama_rows(count: int) -> list[tuple[str, str, list[float], str]]:
    """Nodes as LlamaIndex's 2023 Cassandra store wrote them: text keys, metadata with _node_content."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    rows = []
    for i in range(count):
        node = TextNode(text=f"node {i}", id_=str(uuid.uuid4()), metadata={"page": i})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i % 3}")
        metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
        rows.append((node.node_id, node.text, axis(i), json.dumps(metadata)))
    return rows


def axis(i: int) -> list[float]:
    v = [0.01] * DIM
    v[i % DIM] = 1.0
    return v


def paste(code: str, **names: Any) -> dict[str, Any]:
    namespace = dict(names)
    exec(compile(code, "open_with", "exec"), namespace)
    return namespace


def test_for_langchain_and_llamaindex_read_back_through_the_bundle(
    astra: AstraLocal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.embeddings import FakeEmbeddings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.vector_stores.types import VectorStoreQuery

    monkeypatch.setenv("ASTRA_DB_APPLICATION_TOKEN", astra.token)  # the handoff's code reads it, as a user's does
    ks = astra.keyspace
    # LangChain: a vector table of text keys
    lc = {"FAKE_DATA_OLD_TABLE": "lc_legacy", "OLD_TABLE": "lc_legacy", "TARGET_TABLE": "lc_docs"}
    assert astra.script(tmp_path, "create.py", "--rows", "200", "--key-type", "text", **lc).code == 0
    langchain = report(astra.script, tmp_path, "migrate.py", "--for", "langchain", **lc)
    assert langchain["rows_written"] == 200
    with astra.admin() as admin:
        key, text, vector = admin.execute(f"SELECT document_id, document, embedding_vector FROM {ks}.lc_legacy").one()
    store = paste(langchain["open_with"]["code"], embeddings=FakeEmbeddings(size=DIM))["store"]
    assert store.get_by_document_id(key).page_content == text
    assert store.similarity_search_with_score_id_by_vector(list(vector), k=1)[0][2] == key
    store.session.cluster.shutdown()

    # LlamaIndex: its 2023 nodes, text keys
    li = {"FAKE_DATA_OLD_TABLE": "li_legacy", "OLD_TABLE": "li_legacy", "TARGET_TABLE": "li_nodes"}
    assert astra.script(tmp_path, "create.py", "--rows", "0", "--key-type", "text", **li).code == 0
    rows = llama_rows(12)
    with astra.admin() as admin:
        insert = admin.prepare(
            f"INSERT INTO {ks}.li_legacy (document_id, document, embedding_vector, metadata_blob) VALUES (?, ?, ?, ?)"
        )
        for row in rows:
            admin.execute(insert, row)
    llama = report(astra.script, tmp_path, "migrate.py", "--for", "llamaindex", **li)
    assert (llama["rows_written"], llama["rows_rejected"]) == (12, 0)
    opened = paste(llama["open_with"]["code"], embed_model=MockEmbedding(embed_dim=DIM))
    found = opened["store"].query(VectorStoreQuery(query_embedding=axis(4), similarity_top_k=1))
    assert found.ids == [rows[4][0]] and found.nodes[0].get_content() == "node 4"
    assert found.nodes[0].metadata == {"page": 4} and found.nodes[0].ref_doc_id == "doc-1"
    opened["session"].cluster.shutdown()


# --- the errors of Astra DB, each as its one line ----------------------------------------------------------


def test_the_bundle_missing_or_not_a_bundle(astra: AstraLocal, tmp_path: Path) -> None:
    missing = tmp_path / "secure-connect-gone.zip"
    result = astra.script(tmp_path, "migrate.py", ASTRA_DB_SECURE_BUNDLE_PATH=str(missing))
    assert (
        result.code == 2 and one_error_line(result.err) == f"error: ASTRA_DB_SECURE_BUNDLE_PATH: no file at '{missing}'"
    )
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    no_config = tmp_path / "no-config.zip"
    with zipfile.ZipFile(no_config, "w") as z:
        z.writestr("ca.crt", "")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(astra.bundle.read_bytes()[:300])
    for bad in (text, no_config, cut):
        result = astra.script(tmp_path, "migrate.py", ASTRA_DB_SECURE_BUNDLE_PATH=str(bad))
        assert result.code == 2 and one_error_line(result.err) == (
            f"error: ASTRA_DB_SECURE_BUNDLE_PATH: {bad} is not a secure-connect bundle (a zip of config.json, ca.crt,"
            " cert and key): download it again from the database's Connect page in Astra's UI"
        )


def test_the_metadata_service_does_not_answer(astra: AstraLocal, tmp_path: Path) -> None:
    """A hibernated, deleted or moved database: its bundle's metadata service is not there."""
    asleep = rewritten(astra.bundle, tmp_path / "b", port=29199)
    result = astra.script(tmp_path, "migrate.py", ASTRA_DB_SECURE_BUNDLE_PATH=str(asleep))
    assert result.code == 3 and one_error_line(result.err) == (
        "error: Astra DB does not answer: its metadata service at 127.0.0.1:29199 (from the secure-connect bundle)"
        " is unreachable. The database may be hibernated (resume it in Astra's UI, then run again), deleted, or not"
        " the bundle's (download the database's current bundle from its Connect page)"
    )


def test_the_proxy_is_unreachable(astra: AstraLocal, tmp_path: Path) -> None:
    with astra.admin() as admin:
        host_id = str(admin.execute("SELECT host_id FROM system.local").one()[0])
    contact = {"local_dc": "datacenter1", "contact_points": [host_id], "sni_proxy_address": "127.0.0.1:29198"}
    with metadata_service(astra.certs, contact) as port:
        bundle = rewritten(astra.bundle, tmp_path / "b", port=port)
        result = astra.script(tmp_path, "migrate.py", ASTRA_DB_SECURE_BUNDLE_PATH=str(bundle))
    assert result.code == 3
    line = one_error_line(result.err)
    assert line.startswith("error: cannot reach Astra DB's proxy at 127.0.0.1:29198 (ConnectionRefusedError: ")
    assert line.endswith(
        "): its metadata service answered, so the database exists and is awake; check that this machine may"
        " connect there (a firewall, or the database's IP access list)"
    )


def test_the_token_or_the_keyspace_refused(astra: AstraLocal, tmp_path: Path) -> None:
    result = astra.script(tmp_path, "migrate.py", ASTRA_DB_APPLICATION_TOKEN="AstraCS:revoked:0000")
    assert result.code == 2 and one_error_line(result.err) == (
        f"error: Astra DB ({astra.bundle}) refused the token: check ASTRA_DB_APPLICATION_TOKEN (an AstraCS:... token"
        " of the database's organization whose role may use the database; a revoked token is refused too)"
    )
    for script in ("create.py", "migrate.py"):
        result = astra.script(tmp_path, script, ASTRA_DB_KEYSPACE="vectors")
        assert result.code == 2 and one_error_line(result.err) == (
            "error: keyspace 'vectors' does not exist in this Astra database: create it in Astra's UI (the"
            " database's Keyspaces) or with the DevOps API, as CQL cannot; or fix CASSANDRA_KEYSPACE (or"
            " ASTRA_DB_KEYSPACE)"
        )


def test_a_permission_missing(astra: AstraLocal, tmp_path: Path) -> None:
    with astra.admin() as admin:
        admin.execute(
            "CREATE KEYSPACE IF NOT EXISTS read_only WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        admin.execute('GRANT SELECT ON KEYSPACE read_only TO "token"')
    try:
        result = astra.script(tmp_path, "create.py", ASTRA_DB_KEYSPACE="read_only")
        assert result.code == 2 and one_error_line(result.err) == (
            "error: the database refused role token the CREATE permission on all tables in read_only (on Astra DB: the"
            " token's role): use a token whose role may create there (Astra: e.g. Database Administrator), or grant"
            " it, then run again"
        )
    finally:
        with astra.admin() as admin:
            admin.execute("DROP KEYSPACE IF EXISTS read_only", timeout=120)


def test_a_write_consistency_astra_refuses_is_refused_before_any_write(astra: AstraLocal, tmp_path: Path) -> None:
    assert astra.script(tmp_path, "create.py", "--rows", "10").code == 0
    for level in ("one", "local_one"):
        result = astra.script(tmp_path, "migrate.py", MIGRATION_CONSISTENCY=level)
        assert result.code == 2 and one_error_line(result.err) == (
            f"error: MIGRATION_CONSISTENCY: Astra DB refuses writes at {level.upper()} (it refuses ANY, ONE and"
            " LOCAL_ONE): use local_quorum (the default)"
        )
    with astra.admin() as admin:
        tables = admin.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (astra.keyspace,)
        )
        assert [r.table_name for r in tables] == ["legacy"]  # no target, no state


def test_the_limit_of_tables_refuses_the_target(astra: AstraLocal, tmp_path: Path) -> None:
    """The database is at its limit of tables (filled by a superuser, whom guardrails do not count against)."""
    assert astra.script(tmp_path, "create.py", "--rows", "10").code == 0
    with astra.admin() as admin:
        admin.execute(
            "CREATE KEYSPACE IF NOT EXISTS filler WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        user = admin.execute("SELECT keyspace_name FROM system_schema.tables")
        count = sum(1 for r in user if not r.keyspace_name.startswith("system"))
        for i in range(20 - count):
            admin.execute(f"CREATE TABLE filler.t{i} (k int PRIMARY KEY)", timeout=120)
    try:
        result = astra.script(tmp_path, "migrate.py")
        assert result.code == 2 and one_error_line(result.err) == (
            "error: the database refused this at its limit of 20 tables per database (guardrail tables: Cannot have"
            " more than 20 tables, aborting the creation of table migrated): drop tables the database"
            " no longer needs (a migration adds three: the target and two state tables) or ask Astra's support for"
            " a higher limit, then run again"
        )
    finally:
        with astra.admin() as admin:
            admin.execute("DROP KEYSPACE IF EXISTS filler", timeout=120)
