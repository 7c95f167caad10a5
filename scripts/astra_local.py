"""scripts/astra-local.sh's Python parts: the nodes' roles and keyspace, the metadata service, the bundle.

  astra_local.py setup WORKDIR    wait for the nodes; roles, keyspace, grants; the host ids (proxy routes)
  astra_local.py serve WORKDIR    the HTTPS metadata service (wants the bundle's client certificate)
  astra_local.py bundle WORKDIR   write the secure-connect bundle and connect through it as the token

WORKDIR/stack.json (written by the shell script) says where everything is.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import sys
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCAL_DC = "datacenter1"  # SimpleSnitch's name for the one datacenter
WAIT_S = 240.0


def _private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


def _client_context(certs: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # as the driver's cloud path: the CA chain is the trust anchor
    context.load_verify_locations(certs / "ca.crt")
    context.load_cert_chain(certs / "client.crt", certs / "client.key")
    return context


def setup(workdir: Path) -> None:
    from cassandra import AuthenticationFailed
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable

    stack = json.loads((workdir / "stack.json").read_text())
    hosts, keyspace = stack["hosts"], stack["keyspace"]
    admin_file = workdir / "admin"
    user, password = ("admin", admin_file.read_text()) if admin_file.exists() else ("cassandra", "cassandra")
    deadline = time.monotonic() + WAIT_S
    while True:
        cluster = Cluster(
            hosts,
            port=stack["cql_port"],
            ssl_context=_client_context(workdir / "certs"),
            auth_provider=PlainTextAuthProvider(user, password),
            protocol_version=5,
        )
        try:
            session = cluster.connect()
            if sum(h.is_up for h in cluster.metadata.all_hosts()) == len(hosts):
                break
        except (NoHostAvailable, AuthenticationFailed):  # still starting, or the superuser not made yet
            pass
        cluster.shutdown()
        if time.monotonic() > deadline:
            sys.exit(f"the nodes {hosts} did not all answer as {user} within {WAIT_S:g} s")
        time.sleep(2)
    rf = min(3, len(hosts))
    replication = f"{{'class': 'NetworkTopologyStrategy', '{LOCAL_DC}': {rf}}}"
    if not admin_file.exists():
        # Astra has no default superuser: nobody logs in as cassandra/cassandra.
        session.execute("ALTER ROLE cassandra WITH PASSWORD = %s", (secrets.token_urlsafe(24),))
        _private(admin_file, secrets.token_urlsafe(24))
        session.execute(
            "CREATE ROLE IF NOT EXISTS admin WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = %s",
            (admin_file.read_text(),),
        )
    token_file = workdir / "token"
    if not token_file.exists():
        _private(token_file, f"AstraCS:{secrets.token_hex(12)}:{secrets.token_hex(32)}")
    token = token_file.read_text()
    session.execute(
        'CREATE ROLE IF NOT EXISTS "token" WITH SUPERUSER = false AND LOGIN = true AND PASSWORD = %s', (token,)
    )
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
    # The token may use one keyspace, as an Astra token of a Database Administrator can:
    # no CREATE KEYSPACE (no permission on ALL KEYSPACES), and guardrails apply (not a superuser).
    for permission in ("CREATE", "ALTER", "DROP", "SELECT", "MODIFY"):
        session.execute(f'GRANT {permission} ON KEYSPACE {keyspace} TO "token"')
    ids = {h.address: str(h.host_id) for h in cluster.metadata.all_hosts()}
    cluster.shutdown()
    (workdir / "host_ids").write_text("".join(f"{ids[h]}\n" for h in hosts))


class _Metadata(BaseHTTPRequestHandler):
    answer = b""

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metadata":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a request a connection: no log wanted


def serve(workdir: Path) -> None:
    stack = json.loads((workdir / "stack.json").read_text())
    host_ids = (workdir / "host_ids").read_text().split()
    contact_info = {
        "type": "sni_proxy",
        "local_dc": LOCAL_DC,
        "contact_points": host_ids,
        "sni_proxy_address": stack["proxy"],
    }
    _Metadata.answer = json.dumps({"version": 1, "region": "local", "contact_info": contact_info}).encode()
    certs = workdir / "certs"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "metadata.crt", certs / "metadata.key")
    context.load_verify_locations(certs / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # as Astra's: only a bundle's client certificate gets an answer
    server = ThreadingHTTPServer((stack["metadata_host"], stack["metadata_port"]), _Metadata)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def bundle(workdir: Path) -> None:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    stack = json.loads((workdir / "stack.json").read_text())
    certs = workdir / "certs"
    path = Path(stack["bundle"])
    config = {"host": stack["metadata_host"], "port": stack["metadata_port"], "keyspace": stack["keyspace"]}
    path.touch(mode=0o600)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(certs / "ca.crt", "ca.crt")
        z.write(certs / "client.crt", "cert")
        z.write(certs / "client.key", "key")
    cluster = Cluster(
        cloud={"secure_connect_bundle": str(path)},
        auth_provider=PlainTextAuthProvider("token", (workdir / "token").read_text()),
    )
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local")
        up = sum(h.is_up for h in cluster.metadata.all_hosts())
        if up != len(stack["hosts"]):
            sys.exit(f"{up} of {len(stack['hosts'])} nodes answer through the proxy")
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    commands = {"setup": setup, "serve": serve, "bundle": bundle}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    os.umask(0o077)
    commands[sys.argv[1]](Path(sys.argv[2]))
