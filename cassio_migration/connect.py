"""Sessions: contact points, credentials, TLS, Astra DB; vectors kept as raw bytes."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from cassandra import AuthenticationFailed, ConsistencyLevel, cqltypes
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import ProtocolHandler, ResultMessage
from cassandra.query import PreparedStatement, tuple_factory

from .errors import CredentialsError, FatalError, SettingsError


@dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to connect. Secrets are kept out of repr() and describe()."""

    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    astra_token: str | None = field(default=None, repr=False)
    astra_bundle_path: str | None = None
    astra_db_id: str | None = None
    tls_ca_file: str | None = None
    request_timeout: float = 60.0
    consistency: str = "LOCAL_QUORUM"
    prefix: str = ""  # "TARGET_" for a separate target cluster: names its settings in messages

    def variable(self, name: str) -> str:
        """The setting behind a part of this spec, e.g. TARGET_CASSANDRA_PASSWORD."""
        return self.prefix + name

    @property
    def is_astra(self) -> bool:
        return bool(self.astra_token)

    def describe(self) -> str:
        """Where this connects, for messages and reports (never a secret)."""
        if self.is_astra:
            target = self.astra_bundle_path or f"database {self.astra_db_id}"
            return f"Astra DB ({target})"
        hosts = ",".join(self.contact_points)
        return f"{hosts}:{self.port}" + (" (TLS)" if self.tls_ca_file else "")


# Stands for a secret in a spec sent to worker processes; each worker reads its own environment.
FROM_ENVIRONMENT = "<from the worker's environment>"


def without_secrets(spec: ConnectionSpec) -> ConnectionSpec:
    """The spec with each secret replaced by FROM_ENVIRONMENT: safe to send to other processes."""
    return replace(
        spec,
        password=FROM_ENVIRONMENT if spec.password else None,
        astra_token=FROM_ENVIRONMENT if spec.astra_token else None,
    )


def with_secrets_from_environment(spec: ConnectionSpec, environ: Mapping[str, str] | None = None) -> ConnectionSpec:
    """Fill the secrets a worker was sent as FROM_ENVIRONMENT from its own environment
    (CASSANDRA_PASSWORD, ASTRA_DB_APPLICATION_TOKEN; TARGET_... for a separate target cluster)."""
    env = os.environ if environ is None else environ

    def fill(value: str | None, name: str) -> str | None:
        if value != FROM_ENVIRONMENT:
            return value
        variable = spec.variable(name)
        if not env.get(variable):
            raise CredentialsError(
                f"{variable} is not set in this worker's environment: Dask workers read the credentials"
                " from their own environment; set it where `dask worker` runs"
            )
        return env[variable]

    return replace(
        spec,
        password=fill(spec.password, "CASSANDRA_PASSWORD"),
        astra_token=fill(spec.astra_token, "ASTRA_DB_APPLICATION_TOKEN"),
    )


def secrets_environment(spec: ConnectionSpec) -> dict[str, str]:
    """The spec's secrets under their variables' names, for worker processes started here."""
    pairs = (("CASSANDRA_PASSWORD", spec.password), ("ASTRA_DB_APPLICATION_TOKEN", spec.astra_token))
    return {spec.variable(name): value for name, value in pairs if value}


@dataclass(frozen=True)
class Clusters:
    """The source's connection, and the target's when it is another cluster (TARGET_... settings)."""

    source: ConnectionSpec
    target: ConnectionSpec | None = None  # None: the target is on the source's cluster

    @property
    def target_spec(self) -> ConnectionSpec:
        return self.target or self.source

    def context(self) -> dict[str, str]:
        """Where source and target are, for the job context (never a secret)."""
        found = {"cluster": self.source.describe()}
        if self.target is not None:
            found["target_cluster"] = self.target.describe()
        return found

    def names(self, source: str, target: str) -> tuple[str, str]:
        """Table names for reports, each with its cluster when they are on different ones."""
        if self.target is None:
            return source, target
        return f"{source} on {self.source.describe()}", f"{target} on {self.target.describe()}"

    def without_secrets(self) -> Clusters:
        return Clusters(without_secrets(self.source), self.target and without_secrets(self.target))

    def with_secrets_from_environment(self, environ: Mapping[str, str] | None = None) -> Clusters:
        target = self.target and with_secrets_from_environment(self.target, environ)
        return Clusters(with_secrets_from_environment(self.source, environ), target)

    def secrets_environment(self) -> dict[str, str]:
        return {**secrets_environment(self.source), **(secrets_environment(self.target) if self.target else {})}


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
        "reconnection_policy": ExponentialReconnectionPolicy(0.5, 10.0),
        "connect_timeout": 15,
        "control_connection_timeout": 15,
    }
    if spec.is_astra:
        kwargs["auth_provider"] = PlainTextAuthProvider("token", spec.astra_token)
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
        kwargs["auth_provider"] = PlainTextAuthProvider(spec.username, spec.password)
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
    download_astra_bundle_url(str(spec.astra_db_id), str(spec.astra_token), path)
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


def prepare_raw(session: Session, cql: str) -> PreparedStatement:
    """A prepared statement that takes and returns VECTOR values as their wire bytes.

    The bytes of a VECTOR<FLOAT,n> are the same in every table, so a copy can pass
    them through: decoding and re-encoding 1536 floats costs ~300 us a row in the
    driver, against nothing here. Binds are encoded with the statement's column
    metadata, rows decoded with the metadata of the response (the session's protocol
    handler reads it) or, when the node skips it, with the statement's.
    """
    prepared = session.prepare(cql)
    prepared.column_metadata = [c._replace(type=_raw(c.type)) for c in prepared.column_metadata]
    if prepared.result_metadata:
        prepared.result_metadata = [(*c[:3], _raw(c[3])) for c in prepared.result_metadata]
    return prepared


def open_session(spec: ConnectionSpec, *, raw: bool = False) -> Session:
    """Connect; turn the driver's errors into one-line MigrationErrors.

    `raw`: a session for the copy's hot path: rows as plain tuples, vectors as bytes
    (with statements made by `prepare_raw`).
    """
    kwargs = cluster_kwargs(spec)
    if raw:
        kwargs["execution_profiles"][EXEC_PROFILE_DEFAULT].row_factory = tuple_factory
    cluster = Cluster(**kwargs)
    try:
        session = cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
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
    if raw:
        session.client_protocol_handler = _RawVectorProtocolHandler
    return session


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


def close_session(session: Session) -> None:
    session.cluster.shutdown()
