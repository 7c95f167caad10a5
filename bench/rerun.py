"""The re-run after the cutover: what it reads and how long it takes, against the first, full pass.

.venv/bin/python -m bench.rerun [--rows N] [--dimension D] [--changed 0.01] [--keyspace K] [--baseline DIR]

Drops keyspace K, seeds K.legacy with create.py, then runs migrate.py (pass 1, every row) into
its own target; changes a share of the legacy rows (`--changed`, newer write times, as an
application still writing to the legacy table would); and runs migrate.py again (pass 2). With
`--baseline DIR`, the migrate.py of that checkout (e.g. an older commit's) does the same into a
target of its own, alternating with this one, so both meet the same node and the same changes.
MB read: the values migrate.py read from the source (its report's bytes_read; a version
without that figure shows none).
Prints a table and writes it as JSON to bench/results/rerun.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from bench.measure import Measured, run_measured
from bench.node import count_rows, drop_keyspace, node_pids, wait_idle
from bench.run import MIGRATE, ROOT, SOURCE, Config, Program, child_env, command, failure, read_report, seed, timeout_s
from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified
from cassio_migration.seed import create_keyspace
from settings import load_settings

RESULTS = ROOT / "bench" / "results" / "rerun.json"


def parse_args(argv: Sequence[str] | None) -> tuple[Config, float]:
    parser = argparse.ArgumentParser(description="Benchmark the re-run after the cutover against the first pass.")
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the legacy table [20000]")
    parser.add_argument("--dimension", type=int, default=1536, help="vector dimension [1536]")
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows changed before the re-run [0.01]")
    parser.add_argument("--keyspace", default="cassio_bench_rerun", help="keyspace, DROPPED first")
    parser.add_argument("--baseline", default="", help="also run the migrate.py of this checkout (before/after)")
    args = parser.parse_args(argv)
    if args.rows < 100 or not 0 < args.changed <= 1:
        parser.error("--rows must be at least 100, --changed in (0, 1]")
    return Config(args.rows, args.dimension, 1, args.keyspace, baseline=args.baseline), args.changed


def change_rows(session: Session, keyspace: str, share: float) -> int:
    """Give a share of the legacy rows a new document (and a newer write time); how many."""
    keys = [r.document_id for r in session.execute(f"SELECT document_id FROM {qualified(keyspace, SOURCE)}")]
    chosen = random.Random(7).sample(keys, max(1, round(len(keys) * share)))
    update = session.prepare(f"UPDATE {qualified(keyspace, SOURCE)} SET document = ? WHERE document_id = ?")
    for key in chosen:
        session.execute(update, (f"changed at {time.time()}", key))
    return len(chosen)


def run_pass(cfg: Config, program: Program, workdir: str, spec: Any, name: str) -> dict[str, Any]:
    target = f"{program.slug}_target"
    report = str(Path(workdir) / f"{name}.json")
    m: Measured = run_measured(
        command(program, cfg, target, report),
        child_env(cfg, workdir, target, program),
        workdir,
        node_pids(spec),
        timeout_s(cfg),
    )
    if m.returncode not in program.exit_codes:
        raise SystemExit(f"{program.name} failed: {failure(m, workdir)}")
    data = read_report(report)
    return {
        "wall_s": round(m.wall_s, 1),
        "read_mb": round(data.get("bytes_read", 0) / 1e6, 2) if "bytes_read" in data else None,
        "cpu_s": round(m.cpu_s, 1),
        "rows_read": data.get("rows_read"),
        "rows_written": data.get("rows_written"),
        "rows_skipped": data.get("rows_skipped"),
    }


def _share(part: float | None, whole: float | None) -> str:
    return f"{part / whole:.3f}" if part is not None and whole else "-"


def main(argv: Sequence[str] | None = None) -> int:
    cfg, share = parse_args(argv)
    spec = load_settings(dotenv_path=None).connection()
    session = open_session(spec)
    programs = [MIGRATE]
    if cfg.baseline:
        # Its state tables in a keyspace of their own (another version's tables may differ); an older
        # version's margin for clock skew off, or its re-run would copy every row written minutes ago.
        baseline_ks = (("TARGET_KEYSPACE", f"{cfg.keyspace}_base"), ("MIGRATION_CLOCK_SKEW_SECONDS", "0"))
        programs.append(Program("base", f"migrate.py of {cfg.baseline}", (0, 1), env=baseline_ks, root=cfg.baseline))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rerun-") as workdir:
            seeded = seed(session, spec, cfg, workdir)
            for p in programs:
                if "TARGET_KEYSPACE" in dict(p.env):
                    drop_keyspace(session, dict(p.env)["TARGET_KEYSPACE"])
                    create_keyspace(session, dict(p.env)["TARGET_KEYSPACE"], 1)
            first = {p.slug: run_pass(cfg, p, workdir, spec, f"{p.slug}-1") for p in programs}
            wait_idle(session, cfg.keyspace)
            changed = change_rows(session, cfg.keyspace, share)
            second = {p.slug: run_pass(cfg, p, workdir, spec, f"{p.slug}-2") for p in programs}
            for p in programs:
                keyspace = dict(p.env).get("TARGET_KEYSPACE", cfg.keyspace)
                assert count_rows(session, keyspace, f"{p.slug}_target", "row_id") == cfg.rows
    finally:
        close_session(session)
    runs: dict[str, Any] = {}
    result = {"rows": cfg.rows, "dimension": cfg.dimension, "changed": changed, "seed": seeded, "programs": runs}
    lines = [f"{cfg.rows:,} rows x {cfg.dimension} dims, {changed:,} changed before the re-run"]
    lines.append(f"  {'program':<36} {'pass':<6} {'wall s':>8} {'MB read':>9} {'rows written':>13} {'skipped':>9}")
    for p in programs:
        runs[p.name] = {"full_pass": first[p.slug], "rerun": second[p.slug]}
        for label, r in (("full", first[p.slug]), ("re-run", second[p.slug])):
            lines.append(
                f"  {p.name:<36} {label:<6} {r['wall_s']:>8} {r['read_mb']!s:>9} {r['rows_written']!s:>13}"
                f" {r['rows_skipped']!s:>9}"
            )
        full, rerun = first[p.slug], second[p.slug]
        lines.append(
            f"  {'':<36} re-run/full: {_share(rerun['read_mb'], full['read_mb'])} of the bytes,"
            f" {_share(rerun['wall_s'], full['wall_s'])} of the time"
        )
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
