"""Sessions: contact points, credentials, TLS, Astra DB; vectors kept as raw bytes.

`open_sessions` opens every session a job needs and closes them however it ends.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from cassandra import AuthenticationFailed, ConsistencyLevel, DriverException, UnresolvableContactPoints, cqltypes
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import OverloadedErrorMessage, ProtocolHandler, ResultMessage
from cassandra.query import PreparedStatement, tuple_factory

from .errors import CredentialsError, FatalError, MigrationError, SettingsError, UsageError
from .job import Bundle, Clusters, ConnectionSpec
from .retry import RetryPolicy


def cluster_kwargs(spec: ConnectionSpec, fetch_bundle: Callable[[ConnectionSpec], str] | None = None) -> dict[str, Any]:
    """The driver's Cluster arguments for a spec; no connection is made.

    With an Astra database id, `fetch_bundle` gives the secure-connect bundle's path
    (`open_session` writes the run's fetched bundle to a private file for it).
    """
    consistency = ConsistencyLevel.name_to_value.get(spec.consistency.upper())
    if consistency is None:
        raise SettingsError("MIGRATION_CONSISTENCY", f"unknown consistency level {spec.consistency!r}")
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        request_timeout=spec.request_timeout,
        consistency_level=consistency,
    )
    kwargs: dict[str, Any] = {
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        # v5's checksummed framing costs the Python driver ~1.5x the CPU of v4 per write (measured).
        **({"protocol_version": spec.protocol_version} if spec.protocol_version else {}),
        "reconnection_policy": ExponentialReconnectionPolicy(0.5, 10.0),
        "connect_timeout": 15,
        "control_connection_timeout": 15,
    }
    if spec.astra_token is not None:
        kwargs["auth_provider"] = PlainTextAuthProvider("token", spec.astra_token.reveal())
        if spec.astra_bundle_path:
            kwargs["cloud"] = {"secure_connect_bundle": spec.astra_bundle_path}
        elif spec.astra_db_id:
            if fetch_bundle is None:
                raise ValueError("a database id's bundle is fetched by open_session")
            kwargs["cloud"] = {"secure_connect_bundle": fetch_bundle(spec)}
        else:
            raise SettingsError(
                spec.variable("ASTRA_DB_SECURE_BUNDLE_PATH"),
                f"an Astra token is set but neither a secure bundle path nor {spec.variable('ASTRA_DB_ID')} is",
            )
        return kwargs
    kwargs["contact_points"] = list(spec.contact_points)
    kwargs["port"] = spec.port
    if spec.username or spec.password:
        if not (spec.username and spec.password):
            user, password = spec.variable("CASSANDRA_USERNAME"), spec.variable("CASSANDRA_PASSWORD")
            raise SettingsError(user, f"set both {user} and {password}, or neither")
        kwargs["auth_provider"] = PlainTextAuthProvider(spec.username, spec.password.reveal())
    if spec.tls_ca_file:
        context = ssl.create_default_context(cafile=spec.tls_ca_file)
        # Self-signed node certificates name no host; the CA pin is the trust anchor.
        context.check_hostname = False
        kwargs["ssl_context"] = context
    return kwargs


ASTRA_API_URL = "https://api.astra.datastax.com"
DOWNLOAD_TIMEOUT_S = 30.0


def download_bundle(spec: ConnectionSpec) -> bytes:
    """The secure-connect bundle of `spec.astra_db_id`, from the DevOps API (as cassio.init fetches it):
    the API gives a short-lived link, the link gives the zip. Each step with a timeout and its status checked."""
    assert spec.astra_db_id is not None and spec.astra_token is not None
    db_id, token_var, id_var = (
        spec.astra_db_id,
        spec.variable("ASTRA_DB_APPLICATION_TOKEN"),
        spec.variable("ASTRA_DB_ID"),
    )
    api = (spec.astra_api_url or ASTRA_API_URL).rstrip("/")
    url = f"{api}/v2/databases/{urllib.parse.quote(db_id, safe='')}/secureBundleURL"
    headers = {"Authorization": f"Bearer {spec.astra_token.reveal()}", "Accept": "application/json"}
    what = f"the secure-connect bundle of Astra database {db_id}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="POST", headers=headers), timeout=DOWNLOAD_TIMEOUT_S
        ) as answer:
            link = json.load(answer)["downloadURL"]
        with urllib.request.urlopen(link, timeout=DOWNLOAD_TIMEOUT_S) as answer:
            data = answer.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise CredentialsError(
                f"Astra's DevOps API refused {token_var} (HTTP {exc.code}) when asked for {what}: use a token of"
                " the database's organization whose role may read the database"
            ) from None
        if exc.code == 404:
            raise SettingsError(
                id_var, f"Astra's DevOps API knows no database {db_id} (HTTP 404): check the id (was it deleted?)"
            ) from None
        raise FatalError(f"downloading {what} failed: HTTP {exc.code} from {api}; run again later") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreachable, timed out, not the API's answer
        reason = f"{type(exc).__name__}: {exc}"[:200]
        raise FatalError(
            f"cannot download {what} from {api} ({reason}): check the network, or download the bundle from the"
            f" database's Connect page and set {spec.variable('ASTRA_DB_SECURE_BUNDLE_PATH')}"
        ) from None
    if not data.startswith(b"PK"):
        raise FatalError(f"downloading {what} gave {len(data)} bytes that are not a zip; run again later")
    return data


def with_bundles(clusters: Clusters) -> Clusters:
    """Each Astra database given by its id with its bundle fetched (once: a fetched one is kept)."""

    def fetched(spec: ConnectionSpec) -> ConnectionSpec:
        if not spec.is_astra or spec.astra_bundle_path or not spec.astra_db_id or spec.astra_bundle is not None:
            return spec
        return replace(spec, astra_bundle=Bundle(download_bundle(spec)))

    return Clusters(fetched(clusters.source), clusters.target and fetched(clusters.target))


@contextmanager
def _bundle_file(spec: ConnectionSpec) -> Iterator[str | None]:
    """The fetched bundle as a file only this user can read, removed when the block ends: the driver reads
    it (and unpacks it next to itself) while `Cluster(...)` is built, and never again."""
    if spec.astra_bundle is None or spec.astra_bundle_path:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="astra-bundle-")  # mode 0700
    try:
        path = os.path.join(folder, "secure-connect.zip")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(spec.astra_bundle.data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _raw(typeclass: Any) -> Any:
    if isinstance(typeclass, type) and issubclass(typeclass, cqltypes.VectorType):
        return cqltypes.BytesType
    return typeclass


class _RawVectorResult(ProtocolHandler.message_types_by_opcode[ResultMessage.opcode]):
    """Result decoding that reads VECTOR column types as BLOB."""

    @classmethod
    def read_type(cls, f: Any, user_type_map: Any) -> Any:
        return _raw(super().read_type(f, user_type_map))


class _RawVectorProtocolHandler(ProtocolHandler):
    message_types_by_opcode: ClassVar[dict[int, Any]] = {
        **ProtocolHandler.message_types_by_opcode,
        ResultMessage.opcode: _RawVectorResult,
    }


def prepare_raw(session: Session, cql: str, policy: RetryPolicy) -> PreparedStatement:
    """A prepared statement that takes and returns VECTOR values as their wire bytes
    (prepared as `policy` says: a database over its quota refuses a PREPARE too).

    The bytes of a VECTOR<FLOAT,n> are the same in every table, so a copy can pass
    them through: decoding and re-encoding 1536 floats costs ~300 us a row in the
    driver, against nothing here. Binds are encoded with the statement's column
    metadata, rows decoded with the metadata of the response (the session's protocol
    handler reads it) or, when the node skips it, with the statement's.
    """
    prepared = policy.call("preparing a statement", lambda: session.prepare(cql))
    prepared.column_metadata = [c._replace(type=_raw(c.type)) for c in prepared.column_metadata]
    if prepared.result_metadata:
        prepared.result_metadata = [(*c[:3], _raw(c[3])) for c in prepared.result_metadata]
    return prepared


# A database over its request quota refuses a new connection's first queries too (protocol v5
# answers "overloaded" where v4 is held back): wait for room, as a write does.
OVERLOADED_WAIT_S = 60.0
_OVERLOADED_BACKOFF = RetryPolicy(first_delay_s=0.5)


class _Overloaded(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def open_session(spec: ConnectionSpec, *, raw: bool = False) -> Session:
    """Connect (waiting up to OVERLOADED_WAIT_S while the database says it is overloaded);
    turn the driver's errors into one-line MigrationErrors.

    `raw`: a session for the copy's hot path: rows as plain tuples, vectors as bytes
    (with statements made by `prepare_raw`).
    """
    if spec.astra_db_id and not spec.astra_bundle_path and spec.astra_bundle is None:
        spec = with_bundles(Clusters(spec)).source
    with _bundle_file(spec) as fetched:
        first_try = time.monotonic()
        for attempt in itertools.count():
            # A load balancing policy serves one Cluster: new arguments for each try.
            kwargs = cluster_kwargs(spec, fetch_bundle=lambda _: str(fetched))
            if raw:
                kwargs["execution_profiles"][EXEC_PROFILE_DEFAULT].row_factory = tuple_factory
            try:
                session = _connect(spec, _cluster(spec, kwargs))
                break
            except _Overloaded as exc:
                if time.monotonic() - first_try >= OVERLOADED_WAIT_S:
                    raise FatalError(
                        f"{spec.describe()} refused to connect for {OVERLOADED_WAIT_S:g} s as overloaded"
                        f" ({exc.reason[:200]}): the database is over its request quota; run again when the"
                        " application asks less of it"
                    ) from None
                if attempt == 0:
                    logging.getLogger(__name__).warning(
                        "%s refused to connect as overloaded (over its request quota): trying again for up to %g s",
                        spec.describe(),
                        OVERLOADED_WAIT_S,
                    )
                time.sleep(_OVERLOADED_BACKOFF.delay(attempt))
    if raw:
        session.client_protocol_handler = _RawVectorProtocolHandler
    return session


def _cluster(spec: ConnectionSpec, kwargs: dict[str, Any]) -> Cluster:
    """Cluster(**kwargs). With a secure-connect bundle the driver reads it and asks the database's
    metadata service for the proxy and the nodes right here: their failures as one line each."""
    if "cloud" not in kwargs:
        try:
            return Cluster(**kwargs)
        except UnresolvableContactPoints:  # a contact point no name service knows: a setting to fix
            raise SettingsError(
                spec.variable("CASSANDRA_CONTACT_POINTS"),
                f"no address found for {', '.join(spec.contact_points)}: check the host names",
            ) from None
    path = kwargs["cloud"]["secure_connect_bundle"]
    if spec.astra_bundle_path:
        variable, bundle = spec.variable("ASTRA_DB_SECURE_BUNDLE_PATH"), path
    else:
        variable, bundle = spec.variable("ASTRA_DB_ID"), f"the bundle downloaded for database {spec.astra_db_id}"
    try:
        return Cluster(**kwargs)
    except DriverException as exc:  # the metadata service did not answer, or not as one does
        found = re.search(r"https://([^/\s]+)/metadata", str(exc))
        raise FatalError(
            f"Astra DB does not answer: its metadata service at {found.group(1) if found else 'the bundle address'}"
            " (from the secure-connect bundle) is unreachable. The database may be hibernated (resume it in Astra's"
            " UI, then run again), deleted, or not the bundle's (download the database's current bundle from its"
            " Connect page)"
        ) from None
    except PermissionError as exc:
        raise SettingsError(variable, f"cannot read {bundle}: {exc.strerror}") from None
    except (OSError, ValueError, KeyError):  # not a zip, or without config.json, ca.crt, cert, key
        if spec.astra_bundle_path and not os.path.isfile(path):
            raise SettingsError(variable, f"no file at {path!r}") from None
        raise SettingsError(
            variable,
            f"{bundle} is not a secure-connect bundle (a zip of config.json, ca.crt, cert and key):"
            " download it again from the database's Connect page in Astra's UI",
        ) from None


def _connect(spec: ConnectionSpec, cluster: Cluster) -> Session:
    """cluster.connect(), its errors as one-line MigrationErrors, or _Overloaded (the cluster shut down)."""
    try:
        return cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
        if exc.errors and all(isinstance(e, OverloadedErrorMessage) for e in exc.errors.values()):
            raise _Overloaded(str(next(iter(exc.errors.values())))) from None
        if any(isinstance(e, AuthenticationFailed) for e in exc.errors.values()):
            if spec.is_astra:
                raise CredentialsError(
                    _TOKEN_REFUSED.format(spec.describe(), spec.variable("ASTRA_DB_APPLICATION_TOKEN"))
                ) from None
            raise CredentialsError(
                f"{spec.describe()} refused the credentials: check {spec.variable('CASSANDRA_USERNAME')} and"
                f" {spec.variable('CASSANDRA_PASSWORD')} (or {spec.variable('ASTRA_DB_APPLICATION_TOKEN')})"
            ) from None
        reasons = "; ".join(sorted({type(e).__name__ + ": " + str(e) for e in exc.errors.values()}))
        if spec.is_astra:
            # The keys are the nodes' SNI endpoints (or their text: "proxy host:port:host id").
            proxy = ", ".join(sorted({":".join(str(e).split(":")[:2]) for e in exc.errors})) or "the bundle's proxy"
            raise FatalError(
                f"cannot reach Astra DB's proxy at {proxy} ({reasons[:200]}): its metadata service answered, so the"
                " database exists and is awake; check that this machine may connect there (a firewall, or the"
                " database's IP access list)"
            ) from None
        raise FatalError(
            f"cannot reach Cassandra at {spec.describe()} ({reasons[:300]}): {_unreachable_hint(spec, reasons)}"
        ) from None
    except AuthenticationFailed:
        cluster.shutdown()
        if spec.is_astra:
            raise CredentialsError(
                _TOKEN_REFUSED.format(spec.describe(), spec.variable("ASTRA_DB_APPLICATION_TOKEN"))
            ) from None
        raise CredentialsError(f"{spec.describe()} refused the credentials") from None


_TOKEN_REFUSED = (
    "{} refused the token: check {} (an AstraCS:... token of the database's organization whose role may use"
    " the database; a revoked token is refused too)"
)


def _unreachable_hint(spec: ConnectionSpec, reasons: str) -> str:
    """What to check when no host answered: the TLS settings when TLS is what failed."""
    if spec.tls_ca_file and "SSL" in reasons:
        return (
            f"the TLS handshake failed: check that {spec.variable('CASSANDRA_TLS_CA_FILE')} ({spec.tls_ca_file}) holds the CA"
            " that signed the node's certificate"
        )
    hint = f"is the node up? Check {spec.variable('CASSANDRA_CONTACT_POINTS')} and {spec.variable('CASSANDRA_PORT')}"
    if not spec.tls_ca_file and not spec.is_astra:
        # A TLS-only node resets a plain-text connection at once.
        hint += f" (and {spec.variable('CASSANDRA_TLS_CA_FILE')} if the node requires TLS)"
    return hint


DDL_TIMEOUT_S = 120.0  # a schema change waits for the nodes' agreement: a busy node needs time


def schema_change(session: Session, cql: str, policy: RetryPolicy, what: str = "a schema change") -> None:
    """Run a schema statement, tried again as `policy` says (IF [NOT] EXISTS makes that safe)."""
    policy.call(what, lambda: session.execute(cql, timeout=DDL_TIMEOUT_S))


def close_session(session: Session) -> None:
    session.cluster.shutdown()


@dataclass
class Sessions:
    """A plain session (schema, cassio) and a raw one (vectors as bytes, tuple rows), for the source
    and for the target (the same sessions when the target is on the source's cluster)."""

    plain: Session
    raw: Session
    target_plain: Session
    target_raw: Session
    clusters: Clusters  # with each bundle fetched by database id: the job's, for Dask workers


# Astra DB refuses writes at these (its guardrail write_consistency_levels_disallowed).
ASTRA_REFUSED_WRITES = ("any", "one", "local_one")


@contextmanager
def open_sessions(clusters: Clusters) -> Iterator[Sessions]:
    """Every session of a job, closed when the block ends, however it ends."""
    writes = clusters.target_side
    if writes.is_astra and writes.consistency.lower() in ASTRA_REFUSED_WRITES:
        # Checked before any connection: Astra would refuse the first write, the state's.
        raise SettingsError(
            "MIGRATION_CONSISTENCY",
            f"Astra DB refuses writes at {writes.consistency.upper()} (it refuses ANY, ONE and LOCAL_ONE):"
            " use local_quorum (the default)",
        )
    clusters = with_bundles(clusters)
    with ExitStack() as stack:

        def opened(spec: ConnectionSpec, raw: bool) -> Session:
            session = open_session(spec, raw=raw)
            stack.callback(close_session, session)
            return session

        plain, raw = opened(clusters.source, False), opened(clusters.source, True)
        if clusters.target is None:
            yield Sessions(plain, raw, plain, raw, clusters)
        else:
            yield Sessions(plain, raw, opened(clusters.target, False), opened(clusters.target, True), clusters)


_GUARDRAIL = re.compile(r"Guardrail (\w+) violated: (.*?)(?:\"|$)")
_THRESHOLD = re.compile(r"(?:fail threshold of|more than) (\d+)")
_UNAUTHORIZED = re.compile(r"User (\S+) has no (\w+) permission on <([^>]+)>")
# What a user does about each of Astra DB's limits, by the guardrail that emulates it.
_LIMITS = {
    "tables": (
        "{}tables per database",
        "drop tables the database no longer needs (a migration adds three: the target and two state"
        " tables) or ask Astra's support for a higher limit, then run again",
    ),
    "secondary_indexes_per_table": (
        "{}indexes per table",
        "index fewer metadata keys (METADATA_INDEXING=allow:KEY1,KEY2 or none), then run again",
    ),
    "write_consistency_levels": ("{}write consistency levels", "set MIGRATION_CONSISTENCY=local_quorum (the default)"),
}


def refusal(exc: BaseException) -> MigrationError | None:
    """A database's refusal (a guardrail, as Astra DB's limits are, or a missing permission) found in an
    error's text, as one line saying which limit or permission and what to do; None for other errors."""
    text = str(exc)
    found = _GUARDRAIL.search(text)
    if found:
        name, detail = found.groups()
        limit, todo = _LIMITS.get(name, ("{}" + name, "ask the database's administrator (Astra: its support)"))
        threshold = _THRESHOLD.search(detail)
        label = limit.format(f"{threshold.group(1)} " if threshold else "")
        return UsageError(f"the database refused this at its limit of {label} (guardrail {name}: {detail}): {todo}")
    found = _UNAUTHORIZED.search(text)
    if found:
        role, permission, resource = found.groups()
        return UsageError(
            f"the database refused role {role} the {permission} permission on {resource} (on Astra DB: the"
            f" token's role): use a token whose role may {permission.lower()} there (Astra: e.g. Database"
            " Administrator), or grant it, then run again"
        )
    return None
