"""The job description: where the tables are, what is copied, how the run goes.

Built once, by settings.py, and carried as it is to every range task, in this process or
on a Dask worker: frozen plain data that pickles, and whose repr never shows a secret.
Field names are the settings' own (settings.py builds these types by name), so an option
keeps one name from the command line to the range task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import CredentialsError


class Secret:
    """A password or token: never in repr() or str(); `reveal()` hands it to the driver.

    `Secret.elsewhere()` stands for a secret that is not sent: a worker reads it from its
    own environment (see `Clusters.with_secrets_from_environment`).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    @classmethod
    def elsewhere(cls) -> Secret:
        return cls(None)

    @property
    def is_elsewhere(self) -> bool:
        return self._value is None

    def reveal(self) -> str:
        if self._value is None:
            raise ValueError("this secret was not sent: read it from the environment")
        return self._value

    def __repr__(self) -> str:
        return "Secret('<from the environment>')" if self._value is None else "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str | None]]:
        return Secret, (self._value,)


class Bundle:
    """A secure-connect bundle's bytes (it holds the client's private key): never in repr().

    Fetched once per run by its database id; travels with the job to Dask workers, so that no
    worker downloads it again (see `connect.with_bundles`).
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Bundle(<{len(self.data)} bytes>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bundle) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __reduce__(self) -> tuple[type[Bundle], tuple[bytes]]:
        return Bundle, (self.data,)


@dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to connect. Secrets are `Secret`s: out of repr() and describe()."""

    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    username: str | None = None
    password: Secret | None = None
    astra_token: Secret | None = None
    astra_bundle_path: str | None = None
    astra_db_id: str | None = None
    astra_api_url: str | None = None  # Astra's DevOps API (None: Astra's own), where a database id's bundle is fetched
    astra_bundle: Bundle | None = None  # the bundle fetched for astra_db_id, once per run
    tls_ca_file: str | None = None
    request_timeout: float = 60.0
    protocol_version: int | None = 4  # None: the newest both sides speak (v5 with Cassandra 5)
    consistency: str = "local_quorum"
    prefix: str = ""  # "TARGET_" for a separate target cluster: names its settings in messages

    def variable(self, name: str) -> str:
        """The setting behind a part of this spec, e.g. TARGET_CASSANDRA_PASSWORD."""
        return self.prefix + name

    @property
    def is_astra(self) -> bool:
        return self.astra_token is not None

    def describe(self) -> str:
        """Where this connects, for messages and reports (never a secret)."""
        if self.is_astra:
            return f"Astra DB ({self.astra_bundle_path or f'database {self.astra_db_id}'})"
        return f"{','.join(self.contact_points)}:{self.port}" + (" (TLS)" if self.tls_ca_file else "")

    def secret_variables(self) -> dict[str, Secret | None]:
        return {
            self.variable("CASSANDRA_PASSWORD"): self.password,
            self.variable("ASTRA_DB_APPLICATION_TOKEN"): self.astra_token,
        }

    def without_secrets(self) -> ConnectionSpec:
        """Each secret replaced by `Secret.elsewhere()`: safe to send to other processes."""
        return replace(
            self,
            password=self.password and Secret.elsewhere(),
            astra_token=self.astra_token and Secret.elsewhere(),
        )

    def with_secrets_from_environment(self, environ: Mapping[str, str]) -> ConnectionSpec:
        """Fill the secrets that were not sent from this process's environment
        (CASSANDRA_PASSWORD, ASTRA_DB_APPLICATION_TOKEN; TARGET_... for a separate target cluster)."""

        def fill(secret: Secret | None, variable: str) -> Secret | None:
            if secret is None or not secret.is_elsewhere:
                return secret
            if not environ.get(variable):
                raise CredentialsError(
                    f"{variable} is not set in this worker's environment: Dask workers read the credentials"
                    " from their own environment; set it where `dask worker` runs"
                )
            return Secret(environ[variable])

        password, token = self.secret_variables()
        return replace(self, password=fill(self.password, password), astra_token=fill(self.astra_token, token))


@dataclass(frozen=True)
class Clusters:
    """The source's connection, and the target's when it is another cluster (TARGET_... settings)."""

    source: ConnectionSpec = field(default_factory=ConnectionSpec)
    target: ConnectionSpec | None = None  # None: the target is on the source's cluster

    @property
    def target_side(self) -> ConnectionSpec:
        """The target's connection: its own cluster's, or the source's."""
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
        return Clusters(self.source.without_secrets(), self.target and self.target.without_secrets())

    def with_secrets_from_environment(self, environ: Mapping[str, str] | None = None) -> Clusters:
        env = os.environ if environ is None else environ
        target = self.target and self.target.with_secrets_from_environment(env)
        return Clusters(self.source.with_secrets_from_environment(env), target)

    def secrets_environment(self) -> dict[str, str]:
        """The secrets under their variables' names, for worker processes started here."""
        specs = (self.source, *((self.target,) if self.target else ()))
        return {
            name: secret.reveal()
            for spec in specs
            for name, secret in spec.secret_variables().items()
            if secret is not None and not secret.is_elsewhere
        }


@dataclass(frozen=True)
class MetadataIndexing:
    """cassio's `metadata_indexing`: all, none, or an allow or deny list of metadata keys."""

    mode: str = "all"  # all | none | allow | deny
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.mode}:{','.join(self.keys)}" if self.keys else self.mode

    def cassio(self) -> Any:
        """The form cassio's table classes take: 'all', 'none' or ('allow', ['a', 'b'])."""
        return (self.mode, list(self.keys)) if self.keys else self.mode


@dataclass(frozen=True)
class MaxErrors:
    """The error budget: rejected rows allowed, as a count and/or a share of the rows read."""

    rows: int | None = None
    share: float | None = None  # 0.005 for 0.5%

    def __str__(self) -> str:
        if self.share is not None:
            return f"{self.share * 100:g}%"
        return "no limit" if self.rows is None else str(self.rows)


# Who reads the target (TARGET_FRAMEWORK, --for): each sets the layout that reader opens.
FRAMEWORKS = ("cassio", "langchain", "llamaindex")


@dataclass(frozen=True)
class Job:
    """What is copied: the source table, the target table, and how rows are transformed.

    `explicit`: the settings the user gave; a framework preset fills in only the others.
    """

    clusters: Clusters
    keyspace: str
    old_table: str
    target_table: str
    target_keyspace: str | None = None
    target_key_type: str = "same"  # same | text
    metadata_indexing: MetadataIndexing = MetadataIndexing()
    metadata_wrap_key: str | None = None
    partition_id: str | None = None  # vector tables: a clustered target, every row in this partition
    partition_field: str | None = None  # vector tables: a clustered target, the partition from this metadata field
    target_framework: str = "cassio"  # one of FRAMEWORKS
    explicit: frozenset[str] = frozenset()

    @property
    def target_ks(self) -> str:
        return self.target_keyspace or self.keyspace

    def without_secrets(self) -> Job:
        return replace(self, clusters=self.clusters.without_secrets())


@dataclass(frozen=True)
class RunOptions:
    """How the run goes: parallelism, pacing, retries, where its files go, and the run's flags."""

    concurrency: int = 128  # writes in flight in all
    batch_rows: int = 5  # rows sent together to the same replicas (an UNLOGGED batch); 1 = one by one
    batch_kib: int = 4  # at most this many KiB in a batch: under the node's 5 KiB warn threshold
    parallel_ranges: int = 4
    page_size: int = 200
    splits: int = 0
    rows_per_range: int = 20_000
    scan_routing: str = "replica"  # replica | any
    rate_limit: float = 0.0
    retry_seconds: float = 120.0
    window: str = "adaptive"  # adaptive | fixed: the writes in flight follow the database, or stay at `concurrency`
    lease_s: float = 60.0  # a run holds the job's lease this long past its last renewal
    max_errors: MaxErrors = MaxErrors()
    runs_dir: str = "runs"
    progress_seconds: float = 30.0  # off a terminal: a progress line this often
    workers: int = 0  # > 0: range tasks on that many local worker processes (a local Dask cluster)
    scheduler: str | None = None  # range tasks on the workers of the Dask cluster at this address
    dry_run: bool = False
    restart: bool = False
    full: bool = False
    quiet: bool = False
    delete_extra: bool = False

    @property
    def uses_dask(self) -> bool:
        return bool(self.workers or self.scheduler)


def build(cls: Any, values: Any, **more: Any) -> Any:
    """An instance of the dataclass `cls` from the attributes of `values` of the same names, and `more`."""
    names = {f.name for f in fields(cls)}
    return cls(**{n: getattr(values, n) for n in names if hasattr(values, n) and n not in more}, **more)
