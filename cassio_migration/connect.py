"""Sessions: contact points, credentials, TLS, Astra DB; vectors kept as raw bytes.

`open_sessions` opens every session a job needs and closes them however it ends.
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from cassandra import AuthenticationFailed, ConsistencyLevel, UnresolvableContactPoints, cqltypes
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import OverloadedErrorMessage, ProtocolHandler, ResultMessage
from cassandra.query import PreparedStatement, tuple_factory

from .errors import CredentialsError, FatalError, SettingsError
from .job import Clusters, ConnectionSpec
from .retry import RetryPolicy


def cluster_kwargs(spec: ConnectionSpec, fetch_bundle: Callable[[ConnectionSpec], str] | None = None) -> dict[str, Any]:
    """The driver's Cluster arguments for a spec; no connection is made.

    With an Astra database id, `fetch_bundle` (default: download it, as cassio.init does)
    gives the secure-connect bundle's path.
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
            kwargs["cloud"] = {"secure_connect_bundle": (fetch_bundle or download_bundle)(spec)}
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


def download_bundle(spec: ConnectionSpec) -> str:
    """Download the secure bundle for a database id with cassio's own helper, as cassio.init does."""
    import tempfile

    from cassio.config.bundle_download import download_astra_bundle_url

    path = os.path.join(tempfile.mkdtemp(prefix="astra-bundle-"), f"secure-connect-{spec.astra_db_id}.zip")
    assert spec.astra_token is not None
    download_astra_bundle_url(str(spec.astra_db_id), spec.astra_token.reveal(), path)
    return path


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
    kwargs = cluster_kwargs(spec)
    bundle = kwargs.get("cloud", {}).get("secure_connect_bundle")
    first_try = time.monotonic()
    for attempt in itertools.count():
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
            # A load balancing policy serves one Cluster: new arguments, the bundle downloaded once.
            kwargs = cluster_kwargs(spec, fetch_bundle=lambda _: bundle)
    if raw:
        session.client_protocol_handler = _RawVectorProtocolHandler
    return session


def _cluster(spec: ConnectionSpec, kwargs: dict[str, Any]) -> Cluster:
    """The driver's Cluster; a contact point no name service knows is a setting to fix (exit 2)."""
    try:
        return Cluster(**kwargs)
    except UnresolvableContactPoints:
        raise SettingsError(
            spec.variable("CASSANDRA_CONTACT_POINTS"),
            f"no address found for {', '.join(spec.contact_points)}: check the host names",
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
            raise CredentialsError(
                f"{spec.describe()} refused the credentials: check {spec.variable('CASSANDRA_USERNAME')} and"
                f" {spec.variable('CASSANDRA_PASSWORD')} (or {spec.variable('ASTRA_DB_APPLICATION_TOKEN')})"
            ) from None
        reasons = "; ".join(sorted({type(e).__name__ + ": " + str(e) for e in exc.errors.values()}))
        raise FatalError(
            f"cannot reach Cassandra at {spec.describe()} ({reasons[:300]}): {_unreachable_hint(spec, reasons)}"
        ) from None
    except AuthenticationFailed:
        cluster.shutdown()
        raise CredentialsError(f"{spec.describe()} refused the credentials") from None


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


@contextmanager
def open_sessions(clusters: Clusters) -> Iterator[Sessions]:
    """Every session of a job, closed when the block ends, however it ends."""
    with ExitStack() as stack:

        def opened(spec: ConnectionSpec, raw: bool) -> Session:
            session = open_session(spec, raw=raw)
            stack.callback(close_session, session)
            return session

        plain, raw = opened(clusters.source, False), opened(clusters.source, True)
        if clusters.target is None:
            yield Sessions(plain, raw, plain, raw)
        else:
            yield Sessions(plain, raw, opened(clusters.target, False), opened(clusters.target, True))
