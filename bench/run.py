"""Copy benchmark: the original scripts' approach vs migrate.py vs a raw-copy ceiling vs the client ceiling.

.venv/bin/python -m bench.run [--rows N] [--dimension D] [--reps R] [--keyspace K] [--workers 1,2,4]
                              [--variant VAR=VALUE ...] [--baseline DIR] [--replication-factor N]
                              [--programs a,b,c,d]
.venv/bin/python -m bench.run --memory-scale 100000,1000000 [--dimension D]

Drops keyspace K, seeds K.legacy with create.py, then times (a) the original approach,
(b) migrate.py with its defaults, (c) a raw copy of the same writes and (d) migrate.py's copy
into a target without indexes (the client ceiling, benchmark only), alternating a, b, c, d
for R reps, each program a subprocess of its own into a fresh target; `--workers` adds
`migrate.py --workers N` for each N to the alternation, `--variant VAR=VALUE` migrate.py with
that setting (e.g. MIGRATION_SCAN_ROUTING=any, MIGRATION_PROTOCOL_VERSION=5), `--baseline DIR`
the migrate.py of another checkout (e.g. an older commit's). Prints one table of medians and writes
it as JSON to bench/results/latest.json. `--memory-scale` instead seeds each size in turn and
runs migrate.py and then migrate.py --verify once on it: peak RSS against the table's size
(bench/results/memory.json). Connection settings come from the environment only (not .env),
so that every program runs with its own defaults; on the local cluster:
CASSANDRA_PORT=9044 ... --replication-factor 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from bench.measure import Measured, run_measured
from bench.node import (
    count_rows,
    create_source,
    drop_keyspace,
    drop_table,
    flush,
    node_pids,
    release_version,
    table_exists,
    wait_idle,
)
from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import identifier
from cassio_migration.job import ConnectionSpec
from cassio_migration.seed import create_keyspace
from cassio_migration.state import TABLES as STATE_TABLES
from settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

SOURCE = "legacy"
RESULTS = ROOT / "bench" / "results" / "latest.json"
MEMORY_RESULTS = ROOT / "bench" / "results" / "memory.json"
# Defaults: ~15 min on a quiet 2-core machine. On Java 17 jvector indexes a 1536-dim row in ~11 ms of node
# CPU (no SIMD), ~160 rows/s for any client: 10,000 rows take 60-90 s per program, steady to a few %.
DEFAULT_ROWS = 10_000
DEFAULT_DIMENSION = 1536
DEFAULT_REPS = 3
DEFAULT_KEYSPACE = "cassio_bench"
# Settings that shape a job: cleared so that each program runs with its own defaults.
JOB_VARIABLES = frozenset(
    {
        "OLD_TABLE",
        "TARGET_TABLE",
        "FAKE_DATA_OLD_TABLE",
        "VECTOR_DIMENSION",
        "NUM_SAMPLE_VECTORS",
        "METADATA_INDEXING",
        "TARGET_KEY_TYPE",
        "METADATA_WRAP_KEY",
        "LOCAL_KEYSPACE",
        "ASTRA_DB_KEYSPACE",
    }
)


@dataclass(frozen=True)
class Program:
    slug: str  # a, b, c, d, vN, wN, base: also the target table's prefix
    name: str
    exit_codes: tuple[int, ...] = (0,)
    workers: int = 0  # migrate.py --workers N
    env: tuple[tuple[str, str], ...] = ()  # settings of this program's own
    root: str = ""  # migrate.py of another checkout


MIGRATE = Program("b", "migrate.py", (0, 1))  # 1 = done with rejects: the row count decides
PROGRAMS = (
    Program("a", "original"),
    MIGRATE,
    Program("c", "raw copy (node ceiling)"),
    Program("d", "client ceiling (no index)"),
)
VERIFY = Program("v", "migrate.py --verify")


@dataclass(frozen=True)
class Config:
    rows: int
    dimension: int
    reps: int
    keyspace: str
    workers: tuple[int, ...] = ()
    memory_scale: tuple[int, ...] = ()
    variants: tuple[tuple[str, str], ...] = ()
    baseline: str = ""
    replication_factor: int = 1
    only: tuple[str, ...] = ("a", "b", "c", "d")

    @property
    def programs(self) -> tuple[Program, ...]:
        extra = [Program(f"w{n}", f"migrate.py --workers {n}", (0, 1), workers=n) for n in self.workers]
        for i, (name, value) in enumerate(self.variants, 1):
            extra.append(Program(f"v{i}", f"migrate.py {name}={value}", (0, 1), env=((name, value),)))
        if self.baseline:
            extra.append(Program("base", f"migrate.py of {self.baseline}", (0, 1), root=self.baseline))
        return tuple(p for p in PROGRAMS if p.slug in self.only) + tuple(extra)


@dataclass
class Rep:
    program: str
    rep: int
    target: str
    ok: bool
    rows_written: int
    rows_in_target: int
    elapsed_s: float  # from the program's own report: connect + create target + copy
    rows_per_s: float
    wall_s: float  # the subprocess, start to exit (interpreter start and imports included)
    peak_rss_mb: float
    cpu_s: float
    node_cpu_s: float | None
    other_cpu_s: float
    idle_wait_s: float
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    copy_rows_per_s: float = 0.0  # migrate.py's own figure: rows over the copy's time (no connect, no plan)


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description="Benchmark the copy: original approach vs migrate.py vs raw copy.")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"rows in the legacy table [{DEFAULT_ROWS}]")
    parser.add_argument(
        "--dimension", type=int, default=DEFAULT_DIMENSION, help=f"vector dimension [{DEFAULT_DIMENSION}]"
    )
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help=f"repetitions of a, b, c [{DEFAULT_REPS}]")
    parser.add_argument("--keyspace", default=DEFAULT_KEYSPACE, help=f"keyspace, DROPPED first [{DEFAULT_KEYSPACE}]")
    parser.add_argument("--workers", default="", help="also time migrate.py --workers N for each N, e.g. 1,2,4")
    parser.add_argument(
        "--memory-scale", default="", help="instead: migrate.py and --verify once per table size, e.g. 100000,1000000"
    )
    parser.add_argument(
        "--variant", action="append", default=[], help="also time migrate.py with this setting, VAR=VALUE (repeatable)"
    )
    parser.add_argument("--baseline", default="", help="also time the migrate.py of this checkout (before/after)")
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="replicas of the keyspace [1; 3 on the cluster]"
    )
    parser.add_argument("--programs", default="a,b,c,d", help="which of a, b, c, d to time [a,b,c,d]")
    args = parser.parse_args(argv)
    only = tuple(p.strip() for p in args.programs.split(",") if p.strip())
    if not set(only) <= {"a", "b", "c", "d"} or "b" not in only:
        parser.error("--programs takes a comma-separated subset of a, b, c, d that includes b")
    if args.rows < 1 or args.reps < 1 or not 1 <= args.dimension <= 8192:
        parser.error("--rows and --reps must be at least 1, --dimension from 1 to 8192")
    try:
        workers = tuple(int(n) for n in args.workers.split(",") if n.strip())
        sizes = tuple(int(n) for n in args.memory_scale.replace("_", "").split(",") if n.strip())
    except ValueError:
        parser.error("--workers and --memory-scale take comma-separated whole numbers")
    if any(n < 1 for n in workers + sizes):
        parser.error("--workers and --memory-scale take numbers of at least 1")
    keyspace = identifier("--keyspace", args.keyspace)
    variants = tuple((v.split("=", 1)[0], v.split("=", 1)[1]) for v in args.variant if "=" in v)
    if len(variants) != len(args.variant) or not all(name.startswith("MIGRATION_") for name, _ in variants):
        parser.error("--variant takes MIGRATION_...=VALUE")
    if args.baseline and not (Path(args.baseline) / "migrate.py").is_file():
        parser.error(f"--baseline {args.baseline}: no migrate.py there")
    baseline = str(Path(args.baseline).resolve()) if args.baseline else ""
    return Config(
        args.rows,
        args.dimension,
        args.reps,
        keyspace,
        workers,
        sizes,
        variants,
        baseline,
        args.replication_factor,
        only,
    )


def machine(session: Session) -> dict[str, Any]:
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "cassandra": release_version(session),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def child_env(cfg: Config, workdir: str, target: str, program: Program = MIGRATE) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES and not k.startswith("MIGRATION_")}
    env.update(program.env)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        CASSANDRA_KEYSPACE=cfg.keyspace,
        FAKE_DATA_OLD_TABLE=SOURCE,
        OLD_TABLE=SOURCE,
        TARGET_TABLE=target,
        VECTOR_DIMENSION=str(cfg.dimension),
        MIGRATION_RUNS_DIR=os.path.join(workdir, "runs"),
    )
    return env


def command(program: Program, cfg: Config, target: str, report: str) -> list[str]:
    common = ["--keyspace", cfg.keyspace, "--source", SOURCE, "--target", target, "--report", report]
    if program.slug == "a":
        return [sys.executable, "-m", "bench.original", *common, "--dimension", str(cfg.dimension)]
    if program.slug == "c":
        return [sys.executable, "-m", "bench.raw_copy", *common]
    if program.slug == "d":
        return [sys.executable, "-m", "bench.client_ceiling", "--report", report]
    workers = ["--workers", str(program.workers)] if program.workers else []
    verify = ["--verify"] if program is VERIFY else []
    script = Path(program.root or ROOT) / "migrate.py"
    return [sys.executable, str(script), "--quiet", "--report", report, *workers, *verify]


def timeout_s(cfg: Config) -> float:
    """Generous: only there so that a stuck program cannot hang the benchmark."""
    return 600.0 + cfg.rows * cfg.dimension / 1536 * 0.25


def failure(m: Measured, workdir: str) -> str:
    """The tail of what a failed program said, and its traceback file if it left one."""
    text = (m.stderr.strip() or m.stdout.strip())[-1500:]
    last_error = Path(workdir) / "last-error.txt"
    if last_error.exists():
        text += "\n" + last_error.read_text()[-1500:]
        last_error.unlink()
    return f"exit {m.returncode}: {text}"


def seed(session: Session, spec: ConnectionSpec, cfg: Config, workdir: str) -> dict[str, Any]:
    """A clean keyspace and the legacy table, flushed so that no program pays for its flush."""
    drop_keyspace(session, cfg.keyspace)
    create_keyspace(session, cfg.keyspace, cfg.replication_factor)
    create_source(session, cfg.keyspace, SOURCE, cfg.dimension)
    cmd = [
        sys.executable,
        str(ROOT / "create.py"),
        "--rows",
        str(cfg.rows),
        "--dimension",
        str(cfg.dimension),
        "--quiet",
    ]
    m = run_measured(cmd, child_env(cfg, workdir, "unused"), workdir, node_pids(spec), timeout_s(cfg))
    if m.returncode != 0:
        raise SystemExit(f"create.py failed: {failure(m, workdir)}")
    found = count_rows(session, cfg.keyspace, SOURCE, "document_id")
    if found != cfg.rows:
        raise SystemExit(f"create.py wrote {found:,} rows, not {cfg.rows:,}")
    flush_started = time.monotonic()
    flush(session, cfg.keyspace, SOURCE)
    return {"rows": found, "wall_s": round(m.wall_s, 1), "flush_s": round(time.monotonic() - flush_started, 1)}


def read_report(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def check(m: Measured, program: Program, cfg: Config, written: int, in_target: int, workdir: str) -> str:
    """Why this rep does not count ('' if it does): a benchmark that copies nothing proves nothing."""
    if m.returncode not in program.exit_codes:
        return failure(m, workdir)
    if in_target != cfg.rows or written != cfg.rows:
        return f"expected {cfg.rows:,} rows: the program wrote {written:,}, the target holds {in_target:,}"
    return ""


def run_rep(
    session: Session,
    spec: ConnectionSpec,
    cfg: Config,
    program: Program,
    rep: int,
    workdir: str,
    target: str | None = None,
    keep: bool = False,
) -> Rep:
    """One program's run into a fresh target (or, for --verify, the given one); dropped after unless `keep`."""
    target = target or f"{program.slug}_r{rep}"
    if program is not VERIFY:
        drop_table(session, cfg.keyspace, target)
        # Each program makes the state tables of its own version (a baseline's may have other columns).
        for table in STATE_TABLES:
            drop_table(session, cfg.keyspace, table)
    # Flushes and compactions left by the previous program would slow this one down.
    idle_wait = wait_idle(session, cfg.keyspace)
    report_path = os.path.join(workdir, f"{program.slug}-{target}.json")
    cmd = command(program, cfg, target, report_path)
    m = run_measured(cmd, child_env(cfg, workdir, target, program), workdir, node_pids(spec), timeout_s(cfg))
    report = read_report(report_path)
    in_target = (
        count_rows(session, cfg.keyspace, target, "row_id") if table_exists(session, cfg.keyspace, target) else 0
    )
    written = int(report.get("matching" if program is VERIFY else "rows_written", 0))
    elapsed = float(report.get("elapsed_s", 0.0))
    error = check(m, program, cfg, written, in_target, workdir)
    if not keep:
        drop_table(session, cfg.keyspace, target)  # frees the node's memory and disk for the next program
    return Rep(
        program=program.name,
        rep=rep,
        target=target,
        ok=not error,
        rows_written=written,
        rows_in_target=in_target,
        elapsed_s=round(elapsed, 2),
        rows_per_s=round(written / elapsed, 1) if elapsed > 0 else 0.0,
        wall_s=round(m.wall_s, 2),
        peak_rss_mb=round(m.peak_rss_mb, 1),
        cpu_s=round(m.cpu_s, 2),
        node_cpu_s=round(m.node_cpu_s, 2) if m.node_cpu_s is not None else None,
        other_cpu_s=round(m.other_cpu_s, 2),
        idle_wait_s=round(idle_wait, 1),
        error=error,
        report=report,
        copy_rows_per_s=float(report.get("rows_per_s", 0.0)),
    )


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(reps: Sequence[Rep], cfg: Config) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cores = os.cpu_count() or 1
    for program in cfg.programs:
        mine = [r for r in reps if r.program == program.name]
        ok = [r for r in mine if r.ok]
        node = [r.node_cpu_s for r in ok if r.node_cpu_s is not None]
        out[program.name] = {
            "ok_reps": len(ok),
            "reps": len(mine),
            "rows_per_s": median([r.rows_per_s for r in ok]),
            "wall_s": median([r.wall_s for r in ok]),
            "peak_rss_mb": median([r.peak_rss_mb for r in ok]),
            "client_cpu_s": median([r.cpu_s for r in ok]),
            # user + system of the program's whole process tree, interpreter start included
            "client_cpu_us_per_row": median([r.cpu_s * 1e6 / cfg.rows for r in ok]),
            "copy_rows_per_s": median([r.copy_rows_per_s for r in ok if r.copy_rows_per_s]),
            "node_cpu_ms_per_row": median([n * 1000 / cfg.rows for n in node]),
            # Below ~100% the node was not the limit (or others took the CPU: see other_cpu_s).
            "node_busy_pct": median([r.node_cpu_s * 100 / (r.wall_s * cores) for r in ok if r.node_cpu_s is not None]),
            "other_cpu_s": median([r.other_cpu_s for r in ok]),
            # A failed rep's speed until it failed (rows acknowledged / elapsed): not in the medians above.
            "rows_per_s_until_failure": median([r.rows_per_s for r in mine if not r.ok and r.rows_per_s > 0]),
            "rows_per_s_by_rep": [r.rows_per_s if r.ok else None for r in mine],
        }
    return out


def ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 3) if top and bottom else None


def fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def render(result: dict[str, Any]) -> str:
    cfg, mach, seeded = result["config"], result["machine"], result["seed"]
    lines = [
        f"cassio 0.0.x -> 0.1.x copy benchmark: {cfg['rows']:,} rows x {cfg['dimension']} dims,"
        f" {cfg['reps']} reps alternating the programs (keyspace {cfg['keyspace']},"
        f" replication factor {cfg['replication_factor']})",
        f"machine: {mach['nproc']} CPUs, {mach['ram_gib']} GiB RAM, Cassandra {mach['cassandra']},"
        f" Python {mach['python']}, {mach['platform']}",
        f"seed: create.py wrote {seeded['rows']:,} rows in {seeded['wall_s']} s (flush {seeded['flush_s']} s)",
        "",
        f"{'program':<34}{'ok':>5}{'rows/s':>9}{'copy rows/s':>13}{'wall s':>9}{'peak RSS MB':>13}"
        f"{'client CPU us/row':>19}{'node CPU ms/row':>17}{'node busy %':>13}{'other CPU s':>13}   rows/s by rep",
    ]
    for program in Config(**result["config"]).programs:
        s = result["programs"][program.name]
        by_rep = " / ".join(fmt(v, ".0f") for v in s["rows_per_s_by_rep"])
        if s["rows_per_s_until_failure"] is not None:
            by_rep += f"  (failed reps ran at {fmt(s['rows_per_s_until_failure'])} rows/s until they failed)"
        lines.append(
            f"{'(' + program.slug + ') ' + program.name:<34}{str(s['ok_reps']) + '/' + str(s['reps']):>5}"
            f"{fmt(s['rows_per_s']):>9}{fmt(s['copy_rows_per_s']):>13}{fmt(s['wall_s']):>9}"
            f"{fmt(s['peak_rss_mb']):>13}{fmt(s['client_cpu_us_per_row'], ',.0f'):>19}"
            f"{fmt(s['node_cpu_ms_per_row'], '.2f'):>17}{fmt(s['node_busy_pct'], '.0f'):>13}"
            f"{fmt(s['other_cpu_s']):>13}   {by_rep}"
        )
    ratios = result["ratios"]
    lines += [
        "",
        f"median rows/s ratios: b/a = {fmt(ratios['b/a'], '.2f')}x   b/c = {fmt(ratios['b/c'], '.2f')}x"
        f"   (b/a against a's speed until it failed: {fmt(ratios['b/a until failure'], '.2f')}x)",
        "rows/s = rows written / the program's own elapsed time (connect + create target + copy); copy rows/s ="
        " migrate.py's figure over its copy time; wall s = the whole subprocess; client CPU = user + system of"
        " the program's process tree (interpreter start included) per row; node CPU and node busy % ="
        " node CPU / (wall x cores) count all the node served meanwhile; other CPU s = the rest of the"
        " machine, busy meanwhile (noise). (d) writes a table without indexes: not a migration, the client's"
        " own ceiling.",
    ]
    lines += [
        f"migrate.py --workers {n} / migrate.py in-process: {fmt(ratios[f'w{n}/b'], '.2f')}x"
        for n in result["config"]["workers"]
    ]
    lines += [
        f"({p.slug}) {p.name} / (b) migrate.py: {fmt(ratios[f'{p.slug}/b'], '.2f')}x"
        for p in Config(**result["config"]).programs
        if p.slug.startswith(("v", "base"))
    ]
    lines += [f"FAILED {r['program']} rep {r['rep']}: {r['error']}" for r in result["reps"] if not r["ok"]]
    return "\n".join(lines)


def benchmark(cfg: Config, spec: ConnectionSpec, session: Session, workdir: str) -> dict[str, Any]:
    mach = machine(session)
    print(f"seeding {cfg.keyspace}.{SOURCE}: {cfg.rows:,} rows x {cfg.dimension} ...", flush=True)
    seeded = seed(session, spec, cfg, workdir)
    reps: list[Rep] = []
    for rep in range(1, cfg.reps + 1):
        for program in cfg.programs:  # alternating, so that drift of the node or the machine hits all alike
            r = run_rep(session, spec, cfg, program, rep, workdir)
            reps.append(r)
            status = "ok" if r.ok else "FAILED (" + r.error.strip().splitlines()[-1][:300] + ")"
            print(
                f"rep {rep} ({program.slug}) {program.name}: {status}, {r.rows_per_s:,.1f} rows/s,"
                f" wall {r.wall_s:.1f} s, peak RSS {r.peak_rss_mb:,.0f} MB",
                flush=True,
            )
    programs = summarize(reps, cfg)
    by_slug = {p.slug: programs[p.name] for p in cfg.programs}
    a, b, c = (by_slug.get(slug, {}) for slug in "abc")
    return {
        "config": asdict(cfg),
        "machine": mach,
        "seed": seeded,
        "programs": programs,
        "ratios": {
            "b/a": ratio(b["rows_per_s"], a.get("rows_per_s")),
            "b/c": ratio(b["rows_per_s"], c.get("rows_per_s")),
            "b/a until failure": ratio(b["rows_per_s"], a.get("rows_per_s_until_failure")),
            **{
                f"{p.slug}/b": ratio(programs[p.name]["rows_per_s"], b["rows_per_s"])
                for p in cfg.programs
                if p.slug.startswith(("v", "base"))
            },
            **{
                f"w{n}/b": ratio(programs[f"migrate.py --workers {n}"]["rows_per_s"], b["rows_per_s"])
                for n in cfg.workers
            },
        },
        "reps": [asdict(r) for r in reps],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def memory_scale(cfg: Config, spec: ConnectionSpec, session: Session, workdir: str) -> dict[str, Any]:
    """migrate.py, then migrate.py --verify, once per table size: their peak RSS must not grow with the table."""
    runs = []
    for rows in cfg.memory_scale:
        sized = replace(cfg, rows=rows)
        print(f"seeding {cfg.keyspace}.{SOURCE}: {rows:,} rows x {cfg.dimension} ...", flush=True)
        seeded = seed(session, spec, sized, workdir)
        target = f"b_{rows}"
        for program in (MIGRATE, VERIFY):
            r = run_rep(session, spec, sized, program, 1, workdir, target=target, keep=program is MIGRATE)
            print(
                f"{rows:,} rows, {program.name}: {'ok' if r.ok else 'FAILED ' + r.error[-300:]},"
                f" {r.rows_per_s:,.1f} rows/s, peak RSS {r.peak_rss_mb:,.0f} MB",
                flush=True,
            )
            runs.append({"rows": rows, "seed_wall_s": seeded["wall_s"], **asdict(r)})
    first = {r["program"]: r for r in runs if r["rows"] == cfg.memory_scale[0]}
    last = {r["program"]: r for r in runs if r["rows"] == cfg.memory_scale[-1]}
    return {
        "config": asdict(cfg),
        "machine": machine(session),
        "runs": runs,
        "rss_ratio_largest_to_smallest": {
            name: ratio(last[name]["peak_rss_mb"], first[name]["peak_rss_mb"]) for name in first
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def render_memory(result: dict[str, Any]) -> str:
    lines = [f"peak RSS against table size ({result['config']['dimension']} dims)", ""]
    lines.append(f"{'program':<22}{'rows':>12}{'ok':>5}{'rows/s':>10}{'wall s':>10}{'peak RSS MB':>13}")
    for r in result["runs"]:
        lines.append(
            f"{r['program']:<22}{r['rows']:>12,}{'yes' if r['ok'] else 'NO':>5}{r['rows_per_s']:>10,.1f}"
            f"{r['wall_s']:>10,.1f}{r['peak_rss_mb']:>13,.1f}"
        )
    for name, value in result["rss_ratio_largest_to_smallest"].items():
        lines.append(f"\n{name}: peak RSS, largest / smallest table: {fmt(value, '.2f')}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    spec = load_settings(dotenv_path=None).connection()
    session = open_session(spec)
    try:
        with tempfile.TemporaryDirectory(prefix="cassio-bench-") as workdir:
            if cfg.memory_scale:
                result, path = memory_scale(cfg, spec, session, workdir), MEMORY_RESULTS
            else:
                result, path = benchmark(cfg, spec, session, workdir), RESULTS
        drop_keyspace(session, cfg.keyspace)  # the node is shared: leave nothing behind
    finally:
        close_session(session)
    text = render_memory(result) if cfg.memory_scale else render(result)
    print()
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path.relative_to(ROOT)}")
    runs = result["runs"] if cfg.memory_scale else result["reps"]
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
