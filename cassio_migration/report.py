"""Progress bar, run folder, closing table and JSON report."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm


class Progress:
    """A progress bar on a terminal; silent when output is not one, or when quiet."""

    def __init__(self, total: int | None, unit: str, quiet: bool, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        enabled = not quiet and stream.isatty()
        self._bar = tqdm(
            total=total or None,
            unit=unit,
            unit_scale=True,
            file=stream,
            disable=not enabled,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._lock = threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def run_folder(runs_dir: str, kind: str, job: str) -> str:
    """A folder of its own for each run: its rejects and its report."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(runs_dir, f"{stamp}-{kind}-{job}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    os.makedirs(path)
    return path


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


Echo = Callable[[str], None]
