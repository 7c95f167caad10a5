"""Copy rows/s on the Astra-like database (scripts/astra-local.sh), without and with a request quota.

.venv/bin/python -m bench.astra [--rows N] [--dimension D] [--reps R] [--quota 4096]

Starts an Astra-like database of its own (one node, its own folder and ports), seeds it with
create.py through the secure-connect bundle, then times migrate.py (its defaults, through the
bundle) R times into fresh targets; restarts the node with the quota (requests a second, answered
"overloaded" past it, as Astra's rate limit) and times it R times again. Prints the medians and
writes them to bench/results/astra.json; stops and deletes the database at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "astra-local.sh"
RESULTS = ROOT / "bench" / "results" / "astra.json"
# Ports of its own: the tests' Astra-like databases and the README's nodes keep theirs.
PORTS = {
    "ASTRA_LOCAL_CQL_PORT": "9164",
    "ASTRA_LOCAL_STORAGE_PORT": "7164",
    "ASTRA_LOCAL_PROXY_PORT": "29144",
    "ASTRA_LOCAL_METADATA_PORT": "29182",
}


def stack(workdir: Path, *args: str, quota: int = 0) -> None:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CASSANDRA_", "ASTRA_"))}
    env = {**inherited, **PORTS, "ASTRA_LOCAL_WORKDIR": str(workdir)}
    if quota:
        env["ASTRA_LOCAL_QUOTA"] = str(quota)
    subprocess.run(["bash", str(SCRIPT), *args], env=env, check=True, stdout=subprocess.DEVNULL)


def script(workdir: Path, name: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ASTRA_DB_SECURE_BUNDLE_PATH": str(workdir / "secure-connect-astra-local.zip"),
        "ASTRA_DB_APPLICATION_TOKEN": (workdir / "token").read_text(),
        "ASTRA_DB_KEYSPACE": "default_keyspace",
        "FAKE_DATA_OLD_TABLE": "legacy",
        "OLD_TABLE": "legacy",
        "MIGRATION_RUNS_DIR": str(workdir / "runs"),
        **settings,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / name), *args], env=env, cwd=workdir, capture_output=True, text=True, check=False
    )


def copy_rate(workdir: Path, target: str) -> float:
    """migrate.py into a new target: its copy's rows/s (from its report)."""
    report = workdir / f"{target}.json"
    done = script(workdir, "migrate.py", "--quiet", "--report", str(report), TARGET_TABLE=target)
    if done.returncode != 0:
        raise SystemExit(f"migrate.py failed (exit {done.returncode}): {done.stderr.strip()}")
    data: dict[str, Any] = json.loads(report.read_text())
    rate: float = data["rows_written"] / data["copy_s"]
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dimension", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quota", type=int, default=4096, help="requests a second (Astra's floor before scaling)")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"unlimited": [], f"quota {args.quota} requests/s": []}
    with tempfile.TemporaryDirectory(prefix="bench-astra-") as folder:
        workdir = Path(folder)
        try:
            stack(workdir, "start")
            seeded = script(workdir, "create.py", "--rows", str(args.rows), VECTOR_DIMENSION=str(args.dimension))
            if seeded.returncode != 0:
                raise SystemExit(f"create.py failed: {seeded.stderr.strip()}")
            for (label, runs), quota in zip(rates.items(), (0, args.quota)):
                if quota:
                    stack(workdir, "stop")
                    stack(workdir, "start", quota=quota)
                for rep in range(args.reps):
                    target = f"{'q' if quota else 'u'}{rep}"
                    runs.append(copy_rate(workdir, target))
                    print(f"{label}: {runs[-1]:,.0f} rows/s", flush=True)
        finally:
            stack(workdir, "stop", "--wipe")
    medians = {label: statistics.median(runs) for label, runs in rates.items()}
    for label, rate in medians.items():
        print(f"{label:>30}: median {rate:,.0f} rows/s of {args.reps} ({', '.join(f'{r:,.0f}' for r in rates[label])})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"config": vars(args), "host": platform.node(), "rows_per_s": rates, "medians": medians}, indent=2)
    )


if __name__ == "__main__":
    main()
