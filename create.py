"""Seed a legacy (cassio 0.0.7-style) table with fake rows, for rehearsals and tests.

python create.py                      NUM_SAMPLE_VECTORS rows into FAKE_DATA_OLD_TABLE
python create.py --rows 1000 --dirty  plus the rows real tables hold but cassio never wrote
python create.py --kind history       a chat history table (StoredBlobHistory); --kind kvcache: an LLM cache
"""

from __future__ import annotations

import time

import click

from cassio_migration.cli import Command, Console, run
from cassio_migration.connect import open_sessions
from cassio_migration.errors import EXIT_OK
from cassio_migration.job import Clusters
from cassio_migration.legacy import KINDS, LAYOUTS, SEED_KEY_TYPES, require_keyspace
from cassio_migration.report import Progress
from cassio_migration.seed import SeedSpec, create_keyspace, dirty_row_count, seed
from settings import load_settings


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="vector",
    show_default=True,
    help="The legacy class: vector (VectorTable), history (StoredBlobHistory, LangChain chat messages) or kvcache (KVCache, LangChain's LLM cache).",
)
@click.option(
    "--rows", type=click.IntRange(0), help="Number of clean rows to write. [NUM_SAMPLE_VECTORS, default 10000]"
)
@click.option("--dimension", type=click.IntRange(1, 8192), help="Vector dimension. [VECTOR_DIMENSION, default 1536]")
@click.option(
    "--key-type",
    type=click.Choice(SEED_KEY_TYPES),
    default="uuid",
    show_default=True,
    help="uuid (cassio 0.0.7's default), text (LangChain's ids) or autoid (cassio 0.0.6 auto_id: now() time UUIDs).",
)
@click.option(
    "--dirty",
    is_flag=True,
    help=f"Also write rows cassio never wrote this way: vector, {dirty_row_count()} (malformed JSON, JSON list/number/null, NULL or empty metadata_blob, NULL document, NULL vector); history, {dirty_row_count('history')} (NULL blob); kvcache, {dirty_row_count('kvcache')} (cache_key not a list of one value per key name).",
)
@click.option(
    "--ttl-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of rows written with a TTL (1 hour to 30 days).",
)
@click.option(
    "--seed",
    "random_seed",
    type=int,
    default=42,
    show_default=True,
    help="Random seed: the same seed gives the same rows.",
)
@click.option("--append", is_flag=True, help="Add rows to a table that already has some (refused otherwise).")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=64, show_default=True, help="Writes in flight.")
@click.option(
    "--replication-factor",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Replicas of each row when create.py creates the keyspace (NetworkTopologyStrategy in the local data center); 3 on a three-node cluster.",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read the settings from this file instead of ./.env (environment variables still win).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def main(
    kind: str,
    rows: int | None,
    dimension: int | None,
    key_type: str,
    dirty: bool,
    ttl_fraction: float,
    random_seed: int,
    append: bool,
    concurrency: int,
    replication_factor: int,
    env_file: str | None,
    quiet: bool,
) -> None:
    """Create FAKE_DATA_OLD_TABLE as cassio 0.0.7 does and fill it with fake rows.

    --dimension and --key-type shape vector tables only.

    Settings come from the environment and .env (see template.env); flags override them.
    Exit codes: 0 done; 2 bad settings or usage (e.g. the table has rows and no --append);
    3 fatal error.
    """

    def body(console: Console) -> int:
        settings = load_settings(dotenv_path=env_file or ".env")
        console.secrets = settings.secrets()
        keyspace = settings.resolved_keyspace()
        table = settings.require("FAKE_DATA_OLD_TABLE")
        spec = SeedSpec(
            rows=settings.num_sample_vectors if rows is None else rows,
            dimension=settings.vector_dimension if dimension is None else dimension,
            key_type=key_type,
            dirty=dirty,
            ttl_fraction=ttl_fraction,
            seed=random_seed,
            append=append,
            kind=kind,
        )
        with open_sessions(Clusters(settings.connection())) as sessions:
            session = sessions.plain
            if not settings.is_astra:
                # A rehearsal on a local node or cluster: make the keyspace if it is not there yet.
                create_keyspace(session, keyspace, replication_factor)
            else:
                require_keyspace(session, keyspace)
            total = spec.rows + (dirty_row_count(kind) if dirty else 0)
            shape = f"dimension {spec.dimension}, {key_type} keys" if kind == "vector" else LAYOUTS[kind].label
            console.info(f"seeding {keyspace}.{table}: {total:,} rows, {shape}")
            started = time.monotonic()
            progress = Progress(total, "rows", quiet)
            try:
                written = seed(
                    session, sessions.raw, keyspace, table, spec, concurrency=concurrency, progress=progress.update
                )
            finally:
                progress.close()
            elapsed = time.monotonic() - started
            console.out(
                f"wrote {written:,} rows to {keyspace}.{table} in {elapsed:.1f} s"
                f" ({written / elapsed if elapsed else 0:,.0f} rows/s)"
            )
        return EXIT_OK

    run(body, Console(quiet=quiet))


if __name__ == "__main__":
    main()
