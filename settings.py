"""The bundle's settings: one typed object built from the environment and `.env`.

Each setting is declared once, as a field of `Settings`: its variable, parser (type and
bounds), default, help, and the migrate.py flag that overrides it. `template.env` is
made from these declarations (`python settings.py > template.env`; a test keeps it so).
Environment variables win over `.env`. An invalid or missing value raises SettingsError
naming the variable (or the flag); the scripts turn it into one line and exit 2.

This module builds the job description (cassio_migration.job) and imports no other part
of the engine.
"""

from __future__ import annotations

import os
import re
import ssl
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dotenv import dotenv_values

from cassio_migration.cql import identifier
from cassio_migration.errors import SettingsError
from cassio_migration.job import (
    FRAMEWORKS,
    Clusters,
    ConnectionSpec,
    Job,
    MaxErrors,
    MetadataIndexing,
    RunOptions,
    Secret,
    build,
)

Parser = Callable[[str, str], Any]  # (the variable or flag named in errors, the raw text) -> the value


def _int(minimum: int, maximum: int | None = None) -> Parser:
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


def _float(minimum: float) -> Parser:
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


def _secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def _name(name: str, raw: str) -> str:
    return identifier(name, raw.strip())


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in raw.split(",") if h.strip())
    if not hosts:
        raise SettingsError(name, "give at least one host, comma separated")
    # The driver would take "host:9042" for a host name and fail to resolve it.
    with_port = [h for h in hosts if re.fullmatch(r"[^:]+:\d+|\[.*\]:\d+", h)]
    if with_port:
        port = name.replace("CONTACT_POINTS", "PORT")
        raise SettingsError(name, f"{with_port[0]!r} has a port: give host names only, and the port in {port}")
    return hosts


def _choice(*choices: str) -> Parser:
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


def _ca_file(name: str, raw: str) -> str:
    """A CA certificate file the TLS context can load (PEM)."""
    path = _existing_file(name, raw)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        raise SettingsError(name, f"{path!r} holds no CA certificate in PEM form ({exc})") from None
    return path


def _bundle_file(name: str, raw: str) -> str:
    """An Astra DB secure-connect bundle: a zip file."""
    path = _existing_file(name, raw)
    if not zipfile.is_zipfile(path):
        raise SettingsError(  # the words of connect.py's check of the bundle's contents
            name,
            f"{path} is not a secure-connect bundle (a zip of config.json, ca.crt, cert and key):"
            " download it again from the database's Connect page in Astra's UI",
        )
    return path


def _address(name: str, raw: str) -> str:
    """A Dask scheduler address: tcp://HOST:8786 (or tls://..., HOST:PORT)."""
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise SettingsError(name, f"{raw!r} is not a scheduler address such as tcp://HOST:8786")
    return value


def _protocol(name: str, raw: str) -> int | None:
    """4, 5, or auto (None: let the driver and the node agree on the newest)."""
    value = raw.strip().lower()
    if value == "auto":
        return None
    if value in ("3", "4", "5"):
        return int(value)
    raise SettingsError(name, f"{raw!r}: use 4, 5 or auto")


def _indexing(name: str, raw: str) -> MetadataIndexing:
    """'all', 'none', 'allow:a,b' or 'deny:a,b' (cassio's metadata_indexing)."""
    value = raw.strip()
    if value.lower() in ("all", "none"):
        return MetadataIndexing(value.lower())
    mode, sep, keys = value.partition(":")
    names = tuple(k.strip() for k in keys.split(",") if k.strip())
    if sep and mode.lower() in ("allow", "deny") and names:
        return MetadataIndexing(mode.lower(), names)
    raise SettingsError(name, f"{raw!r}: use all, none, allow:field1,field2 or deny:field1,field2")


def _budget(name: str, raw: str) -> MaxErrors:
    """'100' (rows) or '0.5%' (of the rows read)."""
    value = raw.strip()
    share = value.endswith("%")
    try:
        parsed = float(value[:-1]) if share else int(value)
    except ValueError:
        parsed = -1
    if share and parsed > 100:
        raise SettingsError(name, f"{raw!r}: a percentage goes from 0% to 100% (e.g. 0.5%)")
    if parsed < 0:
        raise SettingsError(
            name, f"{raw!r}: give a number of rows, 0 or more (e.g. 100), or a percentage from 0% to 100% (e.g. 0.5%)"
        )
    return MaxErrors(share=parsed / 100) if share else MaxErrors(rows=int(parsed))


@dataclass(frozen=True)
class Variable:
    """One setting: its environment variable, the Settings field, how to parse it, its default and help."""

    name: str
    attr: str
    parse: Parser
    default: Any
    help: str
    flag: str | None = None  # the migrate.py option that overrides it
    metavar: str | None = None
    secret: bool = False
    section: str | None = None  # a heading in template.env before this variable

    @property
    def default_text(self) -> str:
        """The built-in default as one writes it in .env ("" for none)."""
        return _as_text(self.default)


def _setting(
    name: str,
    parse: Parser,
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    section: str | None = None,
) -> Any:
    """A field of Settings, declared with everything about it."""
    secret = parse is _secret
    declared = {"name": name, "parse": parse, "help": help, "flag": flag, "metavar": metavar, "section": section}
    return field(default=default, repr=not secret, metadata={"variable": {**declared, "secret": secret}})


@dataclass(frozen=True)
class Settings:
    # fmt: off
    contact_points: tuple[str, ...] = _setting(
        "CASSANDRA_CONTACT_POINTS", _hosts, ("127.0.0.1",), "comma separated hosts",
        section="=== Set these: where the database is, which tables, who reads them ===\n"
            "--- Your own Cassandra (used unless an Astra token is set) ---")
    port: int = _setting("CASSANDRA_PORT", _int(1, 65535), 9042, "CQL port")
    username: str | None = _setting(
        "CASSANDRA_USERNAME", _text, None, "with PasswordAuthenticator; leave empty otherwise")
    password: Secret | None = _setting("CASSANDRA_PASSWORD", _secret, None, "never printed, logged or stored")
    tls_ca_file: str | None = _setting(
        "CASSANDRA_TLS_CA_FILE", _ca_file, None,
        "PEM file of the CA (or self-signed cert) that signed the node's certificate: turns TLS on")
    astra_token: Secret | None = _setting(
        "ASTRA_DB_APPLICATION_TOKEN", _secret, None, "AstraCS:... ; never printed, logged or stored",
        section="--- Astra DB (used when ASTRA_DB_APPLICATION_TOKEN is set) ---")
    astra_db_id: str | None = _setting(
        "ASTRA_DB_ID", _text, None,
        "database id: its bundle is downloaded once per run from Astra's DevOps API (and removed at the end)")
    astra_api_url: str | None = _setting(
        "ASTRA_DEVOPS_API_URL", _text, None,
        "with ASTRA_DB_ID (or TARGET_ASTRA_DB_ID): the DevOps API that gives the bundle; empty = Astra's own"
        " (https://api.astra.datastax.com); another only for a stand-in, e.g. in tests")
    astra_bundle_path: str | None = _setting(
        "ASTRA_DB_SECURE_BUNDLE_PATH", _bundle_file, None,
        "path to secure-connect-<db>.zip, or leave empty and set ASTRA_DB_ID")
    keyspace: str | None = _setting(
        "CASSANDRA_KEYSPACE", _name, None,
        "keyspace of the source and target tables (on Astra DB this or ASTRA_DB_KEYSPACE)",
        flag="--keyspace", metavar="NAME", section="--- Keyspace and tables ---")
    astra_keyspace: str | None = _setting(
        "ASTRA_DB_KEYSPACE", _name, None,
        "the Astra DB keyspace, if CASSANDRA_KEYSPACE is empty (both set: they must be the same)")
    old_table: str | None = _setting(
        "OLD_TABLE", _name, None,
        "the legacy (cassio 0.0.x) table migrate.py reads: a VectorTable, StoredBlobHistory or KVCache table"
        " (recognised by its columns)", flag="--old-table", metavar="NAME")
    target_table: str | None = _setting(
        "TARGET_TABLE", _name, None,
        "the cassio 0.1.x table migrate.py writes (created if missing); not OLD_TABLE", flag="--target-table",
        metavar="NAME")
    target_framework: str = _setting(
        "TARGET_FRAMEWORK", _choice(*FRAMEWORKS), "cassio",
        "who reads the target: cassio (0.1.x classes), langchain (langchain-community's Cassandra classes) or"
        " llamaindex (CassandraVectorStore); the settings below that are left unset take that reader's layout",
        flag="--for", metavar="cassio|langchain|llamaindex")
    target_keyspace: str | None = _setting(
        "TARGET_KEYSPACE", _name, None,
        "keyspace of the target table (and of the migration's state); empty = CASSANDRA_KEYSPACE",
        section="=== Tuning: leave as is unless docs/ says otherwise for your case ===\n"
            "--- Where the target goes ---")
    local_keyspace: str | None = _setting(
        "LOCAL_KEYSPACE", _name, None,
        "an older name for the keyspace, if CASSANDRA_KEYSPACE is empty (both set: they must be the same)")
    target_contact_points: tuple[str, ...] | None = _setting(
        "TARGET_CASSANDRA_CONTACT_POINTS", _hosts, None, "comma separated hosts of the target cluster",
        section="A target on another cluster (or another Astra DB): set any of these and the target connects with\n"
            "these alone (unset ones take the defaults above: 127.0.0.1, 9042); leave all empty for one cluster.\n"
            "Dask workers read TARGET_CASSANDRA_PASSWORD / TARGET_ASTRA_DB_APPLICATION_TOKEN from their own environment.")
    target_port: int | None = _setting("TARGET_CASSANDRA_PORT", _int(1, 65535), None, "its CQL port")
    target_username: str | None = _setting(
        "TARGET_CASSANDRA_USERNAME", _text, None, "its user, with PasswordAuthenticator")
    target_password: Secret | None = _setting(
        "TARGET_CASSANDRA_PASSWORD", _secret, None, "never printed, logged or stored")
    target_tls_ca_file: str | None = _setting(
        "TARGET_CASSANDRA_TLS_CA_FILE", _ca_file, None, "PEM file of its CA: turns TLS on for the target")
    target_astra_token: Secret | None = _setting(
        "TARGET_ASTRA_DB_APPLICATION_TOKEN", _secret, None,
        "the target is an Astra DB: its token; never printed, logged or stored")
    target_astra_bundle_path: str | None = _setting(
        "TARGET_ASTRA_DB_SECURE_BUNDLE_PATH", _bundle_file, None,
        "its secure-connect bundle, or leave empty and set TARGET_ASTRA_DB_ID")
    target_astra_db_id: str | None = _setting("TARGET_ASTRA_DB_ID", _text, None, "its database id")
    metadata_indexing: MetadataIndexing = _setting(
        "METADATA_INDEXING", _indexing, MetadataIndexing(),
        "which metadata keys cassio indexes (in metadata_s; the others go to attributes_blob):"
        " all, none, allow:k1,k2 or deny:k1,k2; unset: all (--for llamaindex: deny:_node_content)",
        flag="--metadata-indexing", metavar="POLICY",
        section="--- What the target looks like (TARGET_FRAMEWORK sets what you leave empty) ---")
    target_key_type: str = _setting(
        "TARGET_KEY_TYPE", _choice("same", "text"), "same",
        "target key type: same (as the source) or text (UUID keys become their string form);"
        " unset: same (--for langchain or llamaindex: text)",
        flag="--key-type", metavar="same|text")
    metadata_wrap_key: str | None = _setting(
        "METADATA_WRAP_KEY", _text, None,
        "if set, non-object or malformed metadata_blob values are kept as {KEY: value} instead of rejected",
        flag="--wrap-metadata", metavar="KEY")
    partition_id: str | None = _setting(
        "TARGET_PARTITION_ID", _text, None,
        "vector tables: if set, the target is a ClusteredMetadataVectorCassandraTable, every row in this partition",
        flag="--partition-id", metavar="VALUE")
    partition_field: str | None = _setting(
        "TARGET_PARTITION_FIELD", _text, None,
        "vector tables: if set, the same, each row in the partition its metadata field of this name holds"
        " (rows without it are rejected)",
        flag="--partition-field", metavar="KEY")
    fake_data_old_table: str | None = _setting(
        "FAKE_DATA_OLD_TABLE", _name, None,
        "the table create.py fills with fake data (set OLD_TABLE to it to rehearse)",
        section="--- create.py: the fake legacy table of a rehearsal ---")
    vector_dimension: int = _setting("VECTOR_DIMENSION", _int(1, 8192), 1536, "create.py: vector dimension")
    num_sample_vectors: int = _setting("NUM_SAMPLE_VECTORS", _int(0), 10_000, "create.py: number of rows")
    consistency: str = _setting(
        "MIGRATION_CONSISTENCY", _choice("local_quorum", "quorum", "local_one", "one", "all", "each_quorum"),
        "local_quorum", "consistency of reads and writes",
        section="--- How the copy runs ---")
    concurrency: int = _setting(
        "MIGRATION_CONCURRENCY", _int(1, 4096), 128, "writes in flight in all", flag="--concurrency", metavar="N")
    batch_rows: int = _setting(
        "MIGRATION_BATCH_ROWS", _int(1, 100), 5,
        "rows written together when they go to the same replicas (UNLOGGED batches, each row with its own write"
        " time and TTL); 1 = one request a row", flag="--batch-rows", metavar="N")
    batch_kib: int = _setting(
        "MIGRATION_BATCH_KIB", _int(1, 10_240), 4,
        "a batch holds at most this many KiB, a larger row goes alone: under Cassandra's"
        " batch_size_warn_threshold (5 KiB), past which the node logs a warning per batch; a node refuses"
        " batches over 50 KiB")
    parallel_ranges: int = _setting(
        "MIGRATION_PARALLEL_RANGES", _int(1, 256), 4, "token ranges copied at once",
        flag="--parallel-ranges", metavar="N")
    page_size: int = _setting(
        "MIGRATION_PAGE_SIZE", _int(1, 100_000), 200,
        "rows per page of the source scan (halved on a read timeout)", flag="--page-size", metavar="N")
    splits: int = _setting(
        "MIGRATION_SPLITS", _int(0, 1_000_000), 0,
        "token ranges in the plan; 0 = from the table's size estimate (summed over the cluster's nodes)",
        flag="--splits", metavar="N")
    rows_per_range: int = _setting(
        "MIGRATION_ROWS_PER_RANGE", _int(10, 10_000_000), 20_000,
        "with MIGRATION_SPLITS=0: about this many rows a range (a range is the unit of resume and of retry)")
    scan_routing: str = _setting(
        "MIGRATION_SCAN_ROUTING", _choice("replica", "any"), "replica",
        "replica: each range scan goes to a replica of its range (the next one if it is down);"
        " any: to any node, as the load balancing policy picks")
    rate_limit: float = _setting(
        "MIGRATION_RATE_LIMIT", _float(0.0), 0.0, "max rows written per second; 0 = no limit",
        flag="--rate-limit", metavar="ROWS_PER_S")
    retry_seconds: float = _setting(
        "MIGRATION_RETRY_SECONDS", _float(0.0), 120.0,
        "how long a failing read or write is retried before the run stops (state saved)")
    request_timeout: float = _setting(
        "MIGRATION_REQUEST_TIMEOUT", _float(0.1), 60.0,
        "seconds the driver waits for an answer to one request before it counts as timed out (and is retried)")
    protocol_version: int | None = _setting(
        "MIGRATION_PROTOCOL_VERSION", _protocol, 4,
        "native protocol version: 4 (the default: v5's checksummed framing costs the Python driver about half"
        " as much CPU again per write), 5, or auto (the newest both sides speak)")
    window: str = _setting(
        "MIGRATION_WINDOW", _choice("adaptive", "fixed"), "adaptive",
        "adaptive: the writes in flight grow while writes succeed and halve when they time out, come back"
        " slower than a quarter of MIGRATION_REQUEST_TIMEOUT or the database says it is overloaded (a quota),"
        " never above MIGRATION_CONCURRENCY; fixed: always MIGRATION_CONCURRENCY")
    lease_s: float = _setting(
        "MIGRATION_LEASE_SECONDS", _float(5.0), 60.0,
        "a run holds its job's lease (one run of a job at a time) and renews it every quarter of this;"
        " a run that crashed lets it go after this long")
    max_errors: MaxErrors = _setting(
        "MIGRATION_MAX_ERRORS", _budget, MaxErrors(),
        "rejected rows allowed before a run stops (exit 3, state saved): a count (100) or a share (0.5%);"
        " empty = no limit",
        flag="--max-errors", metavar="N|P%")
    runs_dir: str = _setting(
        "MIGRATION_RUNS_DIR", _text, "runs", "one folder per run: run.log, rejects.jsonl and report.json")
    progress_seconds: float = _setting(
        "MIGRATION_PROGRESS_SECONDS", _float(1.0), 30.0,
        "when the output is not a terminal (a log, CI): a progress line this often, in seconds")
    workers: int = _setting(
        "MIGRATION_WORKERS", _int(0, 256), 0,
        "copy/verify on this many local worker processes (a local Dask cluster); 0 = in this process",
        flag="--workers", metavar="N")
    scheduler: str | None = _setting(
        "DASK_SCHEDULER_ADDRESS", _address, None,
        "tcp://HOST:8786: run the range tasks on that Dask cluster's workers (they read CASSANDRA_PASSWORD /"
        " ASTRA_DB_APPLICATION_TOKEN, and their TARGET_ twins, from their own environment)",
        flag="--scheduler", metavar="ADDRESS")
    # fmt: on
    # The settings the user gave (environment, .env or flag), by attribute: a framework preset
    # (TARGET_FRAMEWORK) fills in only the others.
    explicit: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def is_astra(self) -> bool:
        return self.astra_token is not None

    def resolved_keyspace(self) -> str:
        """CASSANDRA_KEYSPACE, else ASTRA_DB_KEYSPACE / LOCAL_KEYSPACE (load_settings refused a conflict)."""
        preferred = (self.astra_keyspace, self.local_keyspace)
        if not self.is_astra:
            preferred = preferred[::-1]
        for value in (self.keyspace, *preferred):
            if value:
                return value
        raise SettingsError("CASSANDRA_KEYSPACE", "not set: set it in .env (see template.env)")

    def require(self, variable: str) -> Any:
        """The value of a setting this script cannot do without."""
        value = getattr(self, BY_NAME[variable].attr)
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
            astra_api_url=self.astra_api_url,
            tls_ca_file=self.tls_ca_file,
            consistency=self.consistency,
            request_timeout=self.request_timeout,
            protocol_version=self.protocol_version,
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
            astra_api_url=self.astra_api_url,
            tls_ca_file=self.target_tls_ca_file,
            consistency=self.consistency,
            request_timeout=self.request_timeout,
            protocol_version=self.protocol_version,
            prefix="TARGET_",
        )

    def clusters(self) -> Clusters:
        return Clusters(self.connection(), self.target_connection())

    def override(self, **flags: Any) -> Settings:
        """Command-line values (already parsed) win over the environment; a flag left out (None) changes nothing."""
        given = {attr: value for attr, value in flags.items() if value is not None}
        return replace(self, **given, explicit=self.explicit | given.keys())

    def job(self) -> Job:
        """What these settings say to copy."""
        keyspace, old, target = self.resolved_keyspace(), self.require("OLD_TABLE"), self.require("TARGET_TABLE")
        if (self.target_keyspace or keyspace, target) == (keyspace, old) and self.target_connection() is None:
            raise SettingsError(
                "TARGET_TABLE",
                f"{target!r} is OLD_TABLE, the legacy table itself: name a new table for the cassio 0.1.x layout"
                " (the legacy table is only read)",
            )
        return build(Job, self, clusters=self.clusters(), keyspace=keyspace, old_table=old, target_table=target)

    def run_options(self, **flags: bool) -> RunOptions:
        """How these settings (and the run's flags: dry_run, restart, full, quiet, delete_extra) say to run."""
        return build(RunOptions, self, **flags)

    def secrets(self) -> list[str]:
        """The secret values in force, so that output can be checked free of them."""
        found = (getattr(self, v.attr) for v in VARIABLES if v.secret)
        return [s.reveal() for s in found if s is not None and not s.is_elsewhere]


VARIABLES: tuple[Variable, ...] = tuple(
    Variable(attr=f.name, default=f.default, **f.metadata["variable"]) for f in fields(Settings) if f.metadata
)
BY_NAME = {v.name: v for v in VARIABLES}
FLAGGED = tuple(v for v in VARIABLES if v.flag)


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
    explicit = frozenset(var.attr for var in VARIABLES if merged.get(var.name) not in (None, ""))
    return _consistent(Settings(**values, explicit=explicit))


def _consistent(s: Settings) -> Settings:
    """Refuse the combinations that would silently connect elsewhere or pick another keyspace than meant."""
    for older, value in (("ASTRA_DB_KEYSPACE", s.astra_keyspace), ("LOCAL_KEYSPACE", s.local_keyspace)):
        if s.keyspace and value and value != s.keyspace:
            raise SettingsError(
                "CASSANDRA_KEYSPACE", f"{s.keyspace!r} but {older} is {value!r}: set one of the two (or the same name)"
            )
    for prefix, token in (("", s.astra_token), ("TARGET_", s.target_astra_token)):
        for name in (f"{prefix}ASTRA_DB_SECURE_BUNDLE_PATH", f"{prefix}ASTRA_DB_ID"):
            if getattr(s, BY_NAME[name].attr) is not None and token is None:
                raise SettingsError(
                    name,
                    f"set without {prefix}ASTRA_DB_APPLICATION_TOKEN, so it would be ignored: set the token too"
                    " (or leave this empty for a Cassandra cluster)",
                )
    return s


TEMPLATE_DEFAULTS = {  # what template.env suggests where it differs from the built-in default
    "FAKE_DATA_OLD_TABLE": "legacy_vectors",
    # left empty, so that TARGET_FRAMEWORK's preset can set them
    "METADATA_INDEXING": "",
    "TARGET_KEY_TYPE": "",
}


def _template_value(var: Variable) -> str:
    return TEMPLATE_DEFAULTS.get(var.name, _as_text(var.default))


def _as_text(value: Any) -> str:
    """A default as one writes it in .env."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, MaxErrors):
        return "" if value == MaxErrors() else str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def template_env() -> str:
    """The text of template.env: every variable, with its help as a comment, under its heading."""
    lines = ['# Copy to .env and edit. Environment variables win over this file; an empty value means "not set".']
    for var in VARIABLES:
        if var.section:
            lines.append("")
            # A heading "--- Name ---" (or a part's "=== Name ===") is drawn to the full width.
            lines.extend(
                f"# {line}".ljust(92, line[0]) if line.startswith(("---", "===")) else f"# {line}"
                for line in var.section.splitlines()
            )
        assignment = f"{var.name}={_template_value(var)}"
        lines.append(f"{assignment.ljust(36)} # {var.help}")
    return "\n".join(lines) + "\n"


def settings_markdown() -> str:
    """The table of every setting at the end of docs/settings.md: variable, flag, default, what it does."""
    lines = ["| variable | flag | default | what it does |", "|---|---|---|---|"]
    for var in VARIABLES:
        flag = f"`{var.flag}`" if var.flag else ""
        default = f"`{var.default_text}`" if var.default_text else ""
        lines.append(f"| `{var.name}` | {flag} | {default} | {var.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown() if sys.argv[1:] == ["--markdown"] else template_env(), end="")
