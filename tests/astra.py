"""The Astra-like database of the `astra` tests (scripts/astra-local.sh), and stand-ins around it:
Astra's DevOps API (a database id's bundle) and a metadata service that names a proxy of our choice."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session

from tests.helpers import ROOT, Result, run_script

SCRIPT = ROOT / "scripts" / "astra-local.sh"


class AstraLocal:
    """scripts/astra-local.sh in a workdir of its own, on ports of its own."""

    def __init__(self, workdir: Path, *, nodes: int, host: int, ports: tuple[int, int, int, int], **env: str) -> None:
        self.workdir, self.nodes = workdir, nodes
        self.hosts = [f"127.0.0.{host + i}" for i in range(nodes)]
        self.cql_port = ports[0]
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CASSANDRA_", "ASTRA_"))}
        self.env = {
            **inherited,
            "ASTRA_LOCAL_WORKDIR": str(workdir),
            "ASTRA_LOCAL_HOST": str(host),
            "ASTRA_LOCAL_CQL_PORT": str(ports[0]),
            "ASTRA_LOCAL_STORAGE_PORT": str(ports[1]),
            "ASTRA_LOCAL_PROXY_PORT": str(ports[2]),
            "ASTRA_LOCAL_METADATA_PORT": str(ports[3]),
            **env,
        }
        self.keyspace = "default_keyspace"
        self.bundle = workdir / "secure-connect-astra-local.zip"

    def run(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def must(self, *args: str, timeout: float = 400) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"astra-local.sh {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    @contextmanager
    def running(self) -> Iterator[None]:
        """Started for the block; stopped and wiped however it ends."""
        try:
            self.must("start", *(["--nodes", str(self.nodes)] if self.nodes > 1 else []))
            yield
        finally:
            self.stop()

    def stop(self) -> None:
        self.run("stop", "--wipe", timeout=200)

    @property
    def token(self) -> str:
        return (self.workdir / "token").read_text()

    @property
    def certs(self) -> Path:
        return self.workdir / "certs"

    @contextmanager
    def admin(self) -> Iterator[Session]:
        """A superuser's session straight to the nodes (guardrails do not apply to it): to set the scene."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(self.certs / "ca.crt")
        context.load_cert_chain(self.certs / "client.crt", self.certs / "client.key")
        auth = PlainTextAuthProvider("admin", (self.workdir / "admin").read_text())
        cluster = Cluster(self.hosts, port=self.cql_port, ssl_context=context, auth_provider=auth)
        try:
            yield cluster.connect()
        finally:
            cluster.shutdown()

    def script_env(self, tmp_path: Path, **extra: str) -> dict[str, str]:
        """The bundle's scripts' settings for this database, as a user sets them."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "ASTRA_DB_SECURE_BUNDLE_PATH": str(self.bundle),
            "ASTRA_DB_APPLICATION_TOKEN": self.token,
            "ASTRA_DB_KEYSPACE": self.keyspace,
            "FAKE_DATA_OLD_TABLE": "legacy",
            "OLD_TABLE": "legacy",
            "TARGET_TABLE": "migrated",
            "VECTOR_DIMENSION": "16",
            "MIGRATION_RUNS_DIR": str(tmp_path / "runs"),
            "MIGRATION_RETRY_SECONDS": "30",
            "MIGRATION_CLOCK_SKEW_SECONDS": "0",
            "TMPDIR": str(tmp_path),  # where a fetched bundle is written while the driver reads it
            **extra,
        }

    def script(self, tmp_path: Path, script: str, *args: str, timeout: float = 600, **extra: str) -> Result:
        return run_script(script, self.script_env(tmp_path, **extra), tmp_path, *args, timeout=timeout)


def rewritten(bundle: Path, folder: Path, **config: Any) -> Path:
    """A copy of `bundle` whose config.json has `config` (e.g. another metadata service port)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "secure-connect-other.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                data = json.dumps({**json.loads(data), **config}).encode()
            dst.writestr(item, data)
    return out


@contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def metadata_service(certs: Path, contact_info: dict[str, Any]) -> Iterator[int]:
    """An HTTPS metadata service as the stack's (the client certificate required) answering `contact_info`."""
    answer = json.dumps({"version": 1, "contact_info": contact_info}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "metadata.crt", certs / "metadata.key")
    context.load_verify_locations(certs / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serve(server) as port:
        yield port


class DevOpsApi:
    """A stand-in of Astra's DevOps API: one database id, one token; counts what it is asked."""

    def __init__(self, db_id: str, token: str, bundle: bytes) -> None:
        self.db_id, self.token, self.bundle = db_id, token, bundle
        self.asked: list[str] = []

    @contextmanager
    def serving(self) -> Iterator[str]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                api.asked.append(f"POST {self.path}")
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    self.send_error(401)
                elif self.path != f"/v2/databases/{api.db_id}/secureBundleURL":
                    self.send_error(404)
                else:
                    host, port = self.server.server_address[:2]
                    self.reply(json.dumps({"downloadURL": f"http://{host}:{port}/bundle.zip"}).encode())

            def do_GET(self) -> None:
                api.asked.append(f"GET {self.path}")
                self.reply(api.bundle)

            def reply(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with _serve(server) as port:
            yield f"http://127.0.0.1:{port}"


def fetched_bundles_left(tmp_path: Path) -> list[str]:
    """The folders a fetched bundle was written to that are still there (each run removes its own)."""
    return sorted(p.name for p in tmp_path.glob("astra-bundle-*"))


def drop_tables(stack: AstraLocal) -> None:
    """Every table of the token's keyspace dropped: the tests share one database and its limit of tables."""
    with stack.admin() as session:
        rows = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (stack.keyspace,)
        )
        for row in rows:
            session.execute(f'DROP TABLE IF EXISTS {stack.keyspace}."{row.table_name}"', timeout=120)
