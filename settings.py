"""The bundle's settings: one typed object built from the environment and `.env`.

Every variable is listed in `template.env` with a comment (a test keeps the two in
step). Environment variables win over `.env`. An invalid or missing value raises
SettingsError naming the variable; the scripts turn it into one line and exit 2.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dotenv import dotenv_values

from cassio_migration.connect import Clusters, ConnectionSpec
from cassio_migration.cql import identifier
from cassio_migration.errors import SettingsError
from cassio_migration.workflow import JobOptions


def _int(minimum: int, maximum: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise SettingsError(name, f"{value} is out of range (expected {bound})")
        return value

    return parse


def _float(minimum: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not a number") from None
        if not value >= minimum:
            raise SettingsError(name, f"{value} is out of range (expected at least {minimum})")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw


def _name(name: str, raw: str) -> str:
    return identifier(name, raw.strip())


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in raw.split(",") if h.strip())
    if not hosts:
        raise SettingsError(name, "give at least one host, comma separated")
    return hosts


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(name, f"{raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _existing_file(name: str, raw: str) -> str:
    path = os.path.expanduser(raw.strip())
    if not os.path.isfile(path):
        raise SettingsError(name, f"no file at {path!r}")
    return path


def _address(name: str, raw: str) -> str:
    """A Dask scheduler address: tcp://HOST:8786 (or tls://..., HOST:PORT)."""
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise SettingsError(name, f"{raw!r} is not a scheduler address such as tcp://HOST:8786")
    return value


def _indexing(name: str, raw: str) -> str:
    """'all', 'none', 'allow:a,b' or 'deny:a,b' (cassio's metadata_indexing)."""
    value = raw.strip()
    if value.lower() in ("all", "none"):
        return value.lower()
    mode, sep, fields = value.partition(":")
    if sep and mode.lower() in ("allow", "deny") and any(f.strip() for f in fields.split(",")):
        return f"{mode.lower()}:{','.join(f.strip() for f in fields.split(',') if f.strip())}"
    raise SettingsError(name, f"{raw!r}: use all, none, allow:field1,field2 or deny:field1,field2")


def _budget(name: str, raw: str) -> str:
    """'100' (rows) or '0.5%' (of the rows read)."""
    value = raw.strip()
    number = value[:-1] if value.endswith("%") else value
    try:
        parsed = float(number) if value.endswith("%") else int(number)
    except ValueError:
        parsed = -1
    if parsed < 0 or (value.endswith("%") and parsed > 100):
        raise SettingsError(name, f"{raw!r}: give a number of rows (e.g. 100) or a percentage (e.g. 0.5%)")
    return value


def budget_limits(value: str | None) -> tuple[int | None, float | None]:
    """(max rows, max share) from a MIGRATION_MAX_ERRORS value."""
    if value is None:
        return None, None
    if value.endswith("%"):
        return None, float(value[:-1]) / 100
    return int(value), None


@dataclass(frozen=True)
class Variable:
    name: str
    attr: str
    parse: Callable[[str, str], Any]
    default: Any
    secret: bool = False


# The single list of settings: template.env must name exactly these variables.
VARIABLES: tuple[Variable, ...] = (
    Variable("CASSANDRA_CONTACT_POINTS", "contact_points", _hosts, ("127.0.0.1",)),
    Variable("CASSANDRA_PORT", "port", _int(1, 65535), 9042),
    Variable("CASSANDRA_USERNAME", "username", _text, None),
    Variable("CASSANDRA_PASSWORD", "password", _text, None, secret=True),
    Variable("CASSANDRA_TLS_CA_FILE", "tls_ca_file", _existing_file, None),
    Variable("CASSANDRA_KEYSPACE", "keyspace", _name, None),
    Variable("LOCAL_KEYSPACE", "local_keyspace", _name, None),
    Variable("ASTRA_DB_KEYSPACE", "astra_keyspace", _name, None),
    Variable("ASTRA_DB_APPLICATION_TOKEN", "astra_token", _text, None, secret=True),
    Variable("ASTRA_DB_SECURE_BUNDLE_PATH", "astra_bundle_path", _existing_file, None),
    Variable("ASTRA_DB_ID", "astra_db_id", _text, None),
    # A target on another cluster: any of these set = the target connects with these alone.
    Variable("TARGET_CASSANDRA_CONTACT_POINTS", "target_contact_points", _hosts, None),
    Variable("TARGET_CASSANDRA_PORT", "target_port", _int(1, 65535), None),
    Variable("TARGET_CASSANDRA_USERNAME", "target_username", _text, None),
    Variable("TARGET_CASSANDRA_PASSWORD", "target_password", _text, None, secret=True),
    Variable("TARGET_CASSANDRA_TLS_CA_FILE", "target_tls_ca_file", _existing_file, None),
    Variable("TARGET_ASTRA_DB_APPLICATION_TOKEN", "target_astra_token", _text, None, secret=True),
    Variable("TARGET_ASTRA_DB_SECURE_BUNDLE_PATH", "target_astra_bundle_path", _existing_file, None),
    Variable("TARGET_ASTRA_DB_ID", "target_astra_db_id", _text, None),
    Variable("OLD_TABLE", "old_table", _name, None),
    Variable("TARGET_TABLE", "target_table", _name, None),
    Variable("TARGET_KEYSPACE", "target_keyspace", _name, None),
    Variable("FAKE_DATA_OLD_TABLE", "fake_data_old_table", _name, None),
    Variable("VECTOR_DIMENSION", "vector_dimension", _int(1, 8192), 1536),
    Variable("NUM_SAMPLE_VECTORS", "num_sample_vectors", _int(0), 10_000),
    Variable(
        "MIGRATION_CONSISTENCY",
        "consistency",
        _choice("local_quorum", "quorum", "local_one", "one", "all", "each_quorum"),
        "local_quorum",
    ),
    Variable("MIGRATION_CONCURRENCY", "concurrency", _int(1, 4096), 128),
    Variable("MIGRATION_PARALLEL_RANGES", "parallel_ranges", _int(1, 256), 4),
    Variable("MIGRATION_PAGE_SIZE", "page_size", _int(1, 100_000), 200),
    Variable("MIGRATION_SPLITS", "splits", _int(0, 1_000_000), 0),
    Variable("MIGRATION_RATE_LIMIT", "rate_limit", _float(0.0), 0.0),
    Variable("MIGRATION_RETRY_SECONDS", "retry_seconds", _float(0.0), 120.0),
    Variable("MIGRATION_CLOCK_SKEW_SECONDS", "clock_skew_s", _float(0.0), 300.0),
    Variable("MIGRATION_MAX_ERRORS", "max_errors", _budget, None),
    Variable("MIGRATION_RUNS_DIR", "runs_dir", _text, "runs"),
    Variable("MIGRATION_WORKERS", "workers", _int(0, 256), 0),
    Variable("DASK_SCHEDULER_ADDRESS", "scheduler", _address, None),
    Variable("METADATA_INDEXING", "metadata_indexing", _indexing, "all"),
    Variable("TARGET_KEY_TYPE", "target_key_type", _choice("same", "text"), "same"),
    Variable("METADATA_WRAP_KEY", "metadata_wrap_key", _text, None),
    Variable("TARGET_PARTITION_ID", "partition_id", _text, None),
    Variable("TARGET_PARTITION_FIELD", "partition_field", _text, None),
)


@dataclass(frozen=True)
class Settings:
    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    keyspace: str | None = None
    local_keyspace: str | None = None
    astra_keyspace: str | None = None
    astra_token: str | None = field(default=None, repr=False)
    astra_bundle_path: str | None = None
    astra_db_id: str | None = None
    target_contact_points: tuple[str, ...] | None = None
    target_port: int | None = None
    target_username: str | None = None
    target_password: str | None = field(default=None, repr=False)
    target_tls_ca_file: str | None = None
    target_astra_token: str | None = field(default=None, repr=False)
    target_astra_bundle_path: str | None = None
    target_astra_db_id: str | None = None
    old_table: str | None = None
    target_table: str | None = None
    target_keyspace: str | None = None
    fake_data_old_table: str | None = None
    vector_dimension: int = 1536
    num_sample_vectors: int = 10_000
    consistency: str = "local_quorum"
    concurrency: int = 128
    parallel_ranges: int = 4
    page_size: int = 200
    splits: int = 0
    rate_limit: float = 0.0
    retry_seconds: float = 120.0
    max_errors: str | None = None
    clock_skew_s: float = 300.0
    runs_dir: str = "runs"
    workers: int = 0
    scheduler: str | None = None
    metadata_indexing: str = "all"
    target_key_type: str = "same"
    metadata_wrap_key: str | None = None
    partition_id: str | None = None
    partition_field: str | None = None

    @property
    def is_astra(self) -> bool:
        return bool(self.astra_token)

    def resolved_keyspace(self) -> str:
        """CASSANDRA_KEYSPACE, else the seed's ASTRA_DB_KEYSPACE / LOCAL_KEYSPACE."""
        preferred = (self.astra_keyspace, self.local_keyspace)
        if not self.is_astra:
            preferred = preferred[::-1]
        for value in (self.keyspace, *preferred):
            if value:
                return value
        raise SettingsError("CASSANDRA_KEYSPACE", "not set: set it in .env (see template.env)")

    def require(self, variable: str) -> Any:
        """The value of a setting this script cannot do without."""
        spec = next(v for v in VARIABLES if v.name == variable)
        value = getattr(self, spec.attr)
        if value is None:
            raise SettingsError(variable, "not set: set it in .env or the environment (see template.env)")
        return value

    def connection(self) -> ConnectionSpec:
        return ConnectionSpec(
            contact_points=self.contact_points,
            port=self.port,
            username=self.username,
            password=self.password,
            astra_token=self.astra_token,
            astra_bundle_path=self.astra_bundle_path,
            astra_db_id=self.astra_db_id,
            tls_ca_file=self.tls_ca_file,
            consistency=self.consistency,
        )

    def target_connection(self) -> ConnectionSpec | None:
        """The target's own connection (TARGET_... settings), or None: the target is on the source's cluster."""
        given = [v for v in VARIABLES if v.name.startswith(("TARGET_CASSANDRA_", "TARGET_ASTRA_"))]
        if all(getattr(self, v.attr) is None for v in given):
            return None
        return ConnectionSpec(
            contact_points=self.target_contact_points or ("127.0.0.1",),
            port=self.target_port or 9042,
            username=self.target_username,
            password=self.target_password,
            astra_token=self.target_astra_token,
            astra_bundle_path=self.target_astra_bundle_path,
            astra_db_id=self.target_astra_db_id,
            tls_ca_file=self.target_tls_ca_file,
            consistency=self.consistency,
            prefix="TARGET_",
        )

    def clusters(self) -> Clusters:
        return Clusters(self.connection(), self.target_connection())

    def override(self, **flags: Any) -> Settings:
        """Command-line flags win over the environment; a flag left out (None) changes nothing."""
        changes = {}
        for attr, value in flags.items():
            if value is None:
                continue
            var = next(v for v in VARIABLES if v.attr == attr)
            changes[attr] = var.parse("--" + attr.replace("_", "-"), value) if isinstance(value, str) else value
        return dataclasses.replace(self, **changes)

    def job_options(
        self,
        *,
        dry_run: bool = False,
        restart: bool = False,
        full: bool = False,
        quiet: bool = False,
        delete_extra: bool = False,
    ) -> JobOptions:
        """The migration job these settings describe."""
        return JobOptions(
            keyspace=self.resolved_keyspace(),
            source_table=self.require("OLD_TABLE"),
            target_table=self.require("TARGET_TABLE"),
            target_keyspace=self.target_keyspace,
            key_to_text=self.target_key_type == "text",
            metadata_indexing=self.metadata_indexing,
            wrap_key=self.metadata_wrap_key,
            partition_id=self.partition_id,
            partition_field=self.partition_field,
            page_size=self.page_size,
            concurrency=self.concurrency,
            parallel_ranges=self.parallel_ranges,
            splits=self.splits,
            rate_limit=self.rate_limit,
            retry_seconds=self.retry_seconds,
            runs_dir=self.runs_dir,
            dry_run=dry_run,
            restart=restart,
            full=full,
            quiet=quiet,
            delete_extra=delete_extra,
            clock_skew_s=self.clock_skew_s,
            max_errors=budget_limits(self.max_errors)[0],
            max_error_ratio=budget_limits(self.max_errors)[1],
            workers=self.workers,
            scheduler=self.scheduler,
        )

    def secrets(self) -> list[str]:
        """The secret values in force, so that output can be checked free of them."""
        return [getattr(self, v.attr) for v in VARIABLES if v.secret and getattr(self, v.attr)]


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: str | None = ".env") -> Settings:
    """Settings from `.env` (if the file exists) overlaid by the environment."""
    merged: dict[str, str | None] = {}
    if dotenv_path and os.path.isfile(dotenv_path):
        merged.update(dotenv_values(dotenv_path))
    # The environment wins, but an empty variable does not hide a value from .env.
    merged.update({k: v for k, v in (os.environ if environ is None else environ).items() if v})
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = merged.get(var.name)
        # An empty value (KEY= in .env) means "not set", as in the seed's template.
        values[var.attr] = var.parse(var.name, raw) if raw not in (None, "") else var.default
    return Settings(**values)
