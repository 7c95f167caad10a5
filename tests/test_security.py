"""Security on real nodes: wrong credentials, secrets that never leak, validated names, TLS.

The password and TLS tests run nodes of their own (scripts/cassandra.sh on ports 9045 and
9047, each with its own CASSANDRA_WORKDIR under pytest's tmp dir); the shared node on
9042 is not used.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified
from cassio_migration.job import ConnectionSpec, Secret
from tests.helpers import OwnNode, one_error_line, port_open, report_of, run_script, script_env

pytestmark = pytest.mark.slow

AUTH_PORT = 9045
TLS_PORT = 9047
NO_NODE_PORT = 9049  # nothing listens here: the name checks must not need a database
WRONG_PASSWORD = "wrong-secret-XYZ"
APP_PASSWORD = "S3cret-Pa55-unique"
KEYSTORE_PASSWORD = "ks-Pa55-7781"


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate (PEM) and a PKCS12 keystore holding it and its key."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert, keystore = folder / f"{name}.key", folder / f"{name}.pem", folder / f"{name}.p12"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    # Cassandra's keystore type is JKS unless set; Java 9+ reads a PKCS12 file as a JKS keystore
    # (keystore.type.compat), so the script's config needs no store_type.
    subprocess.run(
        [
            *("openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-name", "cassandra"),
            *("-out", str(keystore), "-passout", f"pass:{KEYSTORE_PASSWORD}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, keystore


@pytest.fixture(scope="module")
def nodes(node: ConnectionSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OwnNode | Path]]:
    """A password node and a TLS-only node, started (and stopped) side by side to save time."""
    for port in (AUTH_PORT, TLS_PORT):
        if port_open(port):
            pytest.fail(f"port {port} is already in use: this test needs it for a node of its own")
    cert, keystore = make_certificate(tmp_path_factory.mktemp("tls"), "node")
    auth = OwnNode(AUTH_PORT, tmp_path_factory.mktemp("node-auth"), CASSANDRA_AUTH="password")
    tls = OwnNode(
        TLS_PORT,
        tmp_path_factory.mktemp("node-tls"),
        CASSANDRA_TLS_KEYSTORE=str(keystore),
        CASSANDRA_TLS_KEYSTORE_PASSWORD=KEYSTORE_PASSWORD,
    )
    with ThreadPoolExecutor(2) as pool:
        try:
            for f in [pool.submit(n.start) for n in (auth, tls)]:
                f.result()
            yield {"auth": auth, "tls": tls, "cert": cert}
        finally:
            for f in [pool.submit(n.stop, wipe=True) for n in (auth, tls)]:
                f.result()


@pytest.fixture
def auth_node(nodes: dict[str, OwnNode | Path]) -> OwnNode:
    node = nodes["auth"]
    assert isinstance(node, OwnNode)
    return node


@pytest.fixture
def tls_node(nodes: dict[str, OwnNode | Path]) -> tuple[OwnNode, Path]:
    node, cert = nodes["tls"], nodes["cert"]
    assert isinstance(node, OwnNode) and isinstance(cert, Path)
    return node, cert


def new_keyspace() -> str:
    return f"s_{uuid.uuid4().hex[:12]}"


def test_wrong_password_exit_2_naming_the_credentials_then_right_password_works(
    auth_node: OwnNode, tmp_path: Path
) -> None:
    keyspace = new_keyspace()
    wrong = script_env(
        keyspace, tmp_path, port=AUTH_PORT, CASSANDRA_USERNAME="cassandra", CASSANDRA_PASSWORD=WRONG_PASSWORD
    )
    for script, args in (("migrate.py", ()), ("create.py", ("--rows", "10"))):
        code, out, err = run_script(script, wrong, tmp_path, *args)
        assert code == 2, (script, out, err)
        line = one_error_line(err)
        assert "refused the credentials" in line and "CASSANDRA_PASSWORD" in line, line
        assert WRONG_PASSWORD not in out + err
    assert not (tmp_path / "last-error.txt").exists()

    # No credentials at all against a password node: refused too, not a crash.
    code, out, err = run_script("migrate.py", script_env(keyspace, tmp_path, port=AUTH_PORT), tmp_path)
    assert code == 2, out + err
    assert "CASSANDRA_USERNAME" in one_error_line(err)

    right = {**wrong, "CASSANDRA_PASSWORD": "cassandra"}
    code, out, err = run_script("create.py", right, tmp_path, "--rows", "200", "--quiet")  # creates the keyspace
    assert code == 0, out + err
    data = report_of("migrate.py", right, tmp_path, report="m.json")
    assert (data["rows_read"], data["rows_written"], data["rows_rejected"]) == (200, 200, 0)
    v = report_of("migrate.py", right, tmp_path, "--verify", report="v.json")
    assert (v["status"], v["matching"], v["missing"], v["different"]) == ("clean", 200, 0, 0)


def test_the_password_appears_in_no_output_file_or_state_row(auth_node: OwnNode, tmp_path: Path) -> None:
    admin = open_session(ConnectionSpec(port=AUTH_PORT, username="cassandra", password=Secret("cassandra")))
    try:
        admin.execute(
            f"CREATE ROLE IF NOT EXISTS app WITH PASSWORD = '{APP_PASSWORD}' AND LOGIN = true AND SUPERUSER = true"
        )
    finally:
        close_session(admin)

    keyspace = new_keyspace()
    cwd = tmp_path / "work"
    cwd.mkdir()
    report = tmp_path / "verify-report.json"
    env = script_env(keyspace, cwd, port=AUTH_PORT, CASSANDRA_USERNAME="app", CASSANDRA_PASSWORD=APP_PASSWORD)
    assert not any(k.startswith("ASTRA") for k in env)
    outputs: list[str] = []
    for script, args, extra, expected in (
        ("create.py", ("--rows", "100", "--dirty"), {}, 0),  # dirty rows: a rejects file is written too
        ("migrate.py", ("--report", str(cwd / "migrate-report.json")), {}, 1),  # done, with rejected rows
        ("migrate.py", ("--verify", "--report", str(report)), {}, 0),
        ("migrate.py", (), {"OLD_TABLE": "no_such_table"}, 2),  # an error after connecting
    ):
        code, out, err = run_script(script, {**env, **extra}, cwd, *args)
        outputs += [out, err]
        assert code == expected, (script, code, out, err)
    assert json.loads(report.read_text())["status"] == "clean"

    # Every file the runs wrote: the runs folder (reports, rejects), --report files, last-error.txt if any.
    files = [p for p in cwd.rglob("*") if p.is_file()] + [report]
    names = {p.name for p in files}
    assert {"report.json", "rejects.jsonl", "migrate-report.json", "verify-report.json"} <= names, names
    assert all(p.is_relative_to(cwd / "runs") or p.parent == cwd or p == report for p in files)

    admin = open_session(ConnectionSpec(port=AUTH_PORT, username="cassandra", password=Secret("cassandra")))
    try:
        state_rows = [
            row
            for table in ("cassio_migration_jobs", "cassio_migration_ranges")
            for row in admin.execute(f"SELECT * FROM {qualified(keyspace, table)}")
        ]
    finally:
        close_session(admin)
    assert len(state_rows) > 1
    state_text = [str(value) for row in state_rows for value in row]
    assert any("127.0.0.1:9045" in t for t in state_text)  # the job's context is there, its secret is not

    texts = {f"output {i}": text for i, text in enumerate(outputs)}
    texts.update({str(p): p.read_text(encoding="utf-8", errors="replace") for p in files})
    texts.update({f"state value {i}": t for i, t in enumerate(state_text)})
    assert sum(len(t) for t in texts.values()) > 1000  # the search is not over nothing
    leaks = [where for where, text in texts.items() if APP_PASSWORD in text]
    assert not leaks, leaks


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OLD_TABLE", "x; DROP TABLE y"),
        ("TARGET_TABLE", 'migrated" WITH x'),
        ("CASSANDRA_KEYSPACE", "ks.other"),
        ("FAKE_DATA_OLD_TABLE", "legacy--"),
    ],
)
def test_names_are_validated_before_any_connection(tmp_path: Path, variable: str, value: str) -> None:
    assert not port_open(NO_NODE_PORT)
    env = {**script_env("ks", tmp_path, port=NO_NODE_PORT), variable: value}
    for script in ("migrate.py", "create.py"):
        code, out, err = run_script(script, env, tmp_path, timeout=60)
        assert code == 2, (script, out, err)
        line = one_error_line(err)
        assert line.startswith(f"error: {variable}: "), line
        assert "not a valid CQL name" in line and repr(value) in line, line
        assert out == ""


def test_tls_with_the_ca_works_and_without_it_the_client_cannot_connect(
    tls_node: tuple[OwnNode, Path], tmp_path: Path
) -> None:
    _, cert = tls_node
    keyspace = new_keyspace()
    plain = script_env(keyspace, tmp_path, port=TLS_PORT)
    env = {**plain, "CASSANDRA_TLS_CA_FILE": str(cert)}

    code, out, err = run_script("create.py", env, tmp_path, "--rows", "200", "--quiet")
    assert code == 0, out + err
    code, out, err = run_script("migrate.py", env, tmp_path, "--quiet", "--report", str(tmp_path / "m.json"))
    assert code == 0, out + err
    assert json.loads((tmp_path / "m.json").read_text())["rows_written"] == 200
    v = report_of("migrate.py", env, tmp_path, "--verify", report="v.json")
    assert (v["status"], v["matching"], v["missing"], v["different"]) == ("clean", 200, 0, 0)

    # Without the CA the client speaks plain CQL to a TLS-only port: it cannot connect.
    code, out, err = run_script("migrate.py", plain, tmp_path, "--verify", "--quiet", timeout=120)
    assert code == 3, out + err
    line = one_error_line(err)
    assert f"cannot reach Cassandra at 127.0.0.1:{TLS_PORT} (" in line and "CASSANDRA_TLS_CA_FILE" in line, line

    # With another CA the node's certificate is not trusted: the CA is really checked.
    other_cert, _ = make_certificate(tmp_path / "other", "other")
    code, out, err = run_script(
        "migrate.py", {**plain, "CASSANDRA_TLS_CA_FILE": str(other_cert)}, tmp_path, "--verify", "--quiet", timeout=120
    )
    assert code == 3, out + err
    line = one_error_line(err)
    assert f"127.0.0.1:{TLS_PORT} (TLS)" in line and "CERTIFICATE_VERIFY_FAILED" in line, line
    assert f"the TLS handshake failed: check that CASSANDRA_TLS_CA_FILE ({other_cert})" in line, line
