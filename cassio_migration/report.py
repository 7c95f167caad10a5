"""Progress bar, run folder, the closing tables and the JSON report.

A run's summary is computed from its range results: the records each range task
stored in the state table (and, for the pass, the state table's rows themselves).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm import tqdm

from .state import Counts, RangeResult, total
from .verify import CATEGORIES, VerifyCounts

Echo = Callable[[str], None]
LOG_FILE = "run.log"


class RunLog:
    """A run's lines: echoed as the script prints them, and written to run.log in the run's folder
    once it exists (the lines before are kept until then). Secrets are masked in the file too."""

    def __init__(self, echo: Echo, secrets: Iterable[str] = ()) -> None:
        self.echo = echo
        self.secrets = [s for s in secrets if s]
        self._path: str | None = None
        self._waiting: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        self.echo(text)
        self.record(text)

    def record(self, text: str) -> None:
        """Into run.log only."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        with self._lock:
            if self._path is None:
                self._waiting.append(text)
                return
            append_log(os.path.dirname(self._path), text)

    def open(self, folder: str) -> None:
        self._path = os.path.join(folder, LOG_FILE)
        waiting, self._waiting = self._waiting, []
        for text in waiting:
            self.record(text)


def append_log(folder: str, text: str) -> None:
    """Lines at the end of the run's run.log (a line now and then: open, append, close)."""
    with open(os.path.join(folder, LOG_FILE), "a", encoding="utf-8") as f:
        f.write(text + "\n")


def duration(seconds: float) -> str:
    """1 h 02 min, 3 min 05 s, 42 s."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


class Progress:
    """How far a run is: a bar on a terminal (rows, rows/s, time left against the plan's estimate);
    elsewhere a line every `every_s` seconds (ranges, rows, rows/s, ETA). The lines go to the run's
    log too, also behind a bar or with `quiet`."""

    def __init__(
        self,
        total: int | None,
        unit: str,
        quiet: bool,
        stream: TextIO | None = None,
        *,
        ranges: int = 0,
        every_s: float = 30.0,
        log: RunLog | None = None,
    ) -> None:
        stream = stream or sys.stderr
        on_terminal = stream.isatty()
        self._bar = tqdm(
            total=total or None,
            unit=unit,
            unit_scale=True,
            file=stream,
            disable=quiet or not on_terminal,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self.total, self.unit, self.ranges = total or 0, unit, ranges
        self.rows = self.ranges_done = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._say = None if log is None else (log if not quiet and not on_terminal else log.record)
        if self._say is not None:
            threading.Thread(target=self._lines, args=(every_s,), name="progress", daemon=True).start()

    def update(self, n: int) -> None:
        with self._lock:
            self.rows += n
            self._bar.update(n)

    def range_done(self) -> None:
        with self._lock:
            self.ranges_done += 1

    def line(self) -> str:
        """progress: ranges 3/12, rows 1,200/~4,800 (25%), 40 rows/s, ETA 1 min 30 s"""
        elapsed = time.monotonic() - self._started
        rows, done = self.rows, self.ranges_done
        rate = rows / elapsed if elapsed > 0 else 0.0
        parts = [f"ranges {done}/{self.ranges}"] if self.ranges else []
        parts.append(
            f"{self.unit} {rows:,}/~{self.total:,} ({min(rows / self.total, 1):.0%})"
            if self.total
            else f"{self.unit} {rows:,}"
        )
        parts.append(f"{rate:,.0f} {self.unit}/s")
        if self.total and rows < self.total and rate > 0:
            left = (self.total - rows) / rate
        elif self.ranges and done:  # no estimate, or more rows than it said: the ranges' pace
            left = elapsed * (self.ranges - done) / done
        else:
            left = None
        parts.append(f"ETA {duration(left)}" if left is not None else "ETA unknown")
        return "progress: " + ", ".join(parts)

    def _lines(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            assert self._say is not None
            self._say(self.line())

    def close(self) -> None:
        self._stop.set()
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


def handoff_lines(open_with: dict[str, Any] | None) -> str:
    """The closing lines that tell how to open the target (after the summary's table)."""
    if not open_with:
        return ""
    code = "\n".join(f"    {line}" if line else "" for line in open_with["code"].splitlines())
    return f"\n\nopen the result with {open_with['class']} (--for {open_with['framework']}):\n\n{code}"


@dataclass
class MigrateSummary:
    status: str
    source: str = ""
    target: str = ""
    dry_run: bool = False
    pass_number: int = 0
    resumed: bool = False
    ranges: int = 0
    ranges_skipped: int = 0  # done by earlier runs of the pass
    results: list[RangeResult] = field(default_factory=list)  # the ranges this run copied
    pass_counts: Counts | None = None  # the whole pass, earlier runs of a resumed pass included
    elapsed_s: float = 0.0
    plan_s: float = 0.0
    copy_s: float = 0.0
    rejects_file: str | None = None
    run_folder: str | None = None
    error: str | None = None
    open_with: dict[str, Any] | None = None  # how to open the target (handoff.open_with)

    @property
    def finished(self) -> bool:
        """The copy is done (rejected rows aside) and wrote the target: time to say how to open it."""
        return self.status in ("done", "done_with_rejects") and not self.dry_run

    @property
    def counts(self) -> Counts:
        return total(self.results)

    @property
    def pass_rows_rejected(self) -> int:
        return (self.pass_counts or self.counts).rejected

    @property
    def rows_per_s(self) -> float:
        return self.counts.read / self.copy_s if self.copy_s > 0 else 0.0

    def workers(self) -> dict[str, dict[str, float]]:
        """Per worker process: ranges, rows, seconds spent in ranges, rows/s of the copy's time."""
        found: dict[str, dict[str, float]] = {}
        for r in self.results:
            w = found.setdefault(r.worker.process, {"ranges": 0, "rows": 0, "seconds": 0.0})
            w["ranges"] += 1
            w["rows"] += r.counts.read
            w["seconds"] += r.duration_s
        for w in found.values():
            w["rows_per_s"] = round(w["rows"] / self.copy_s, 1) if self.copy_s > 0 else 0.0
        return found

    def window(self) -> dict[str, int]:
        """The write window over the run: back-offs (each process's last count, summed) and its range."""
        last: dict[str, int] = {}
        for r in self.results:
            last[r.worker.process] = max(last.get(r.worker.process, 0), r.pace.backoffs)
        sizes = [r.pace for r in self.results if r.pace.high]
        return {
            "backoffs": sum(last.values()),
            "low": min((p.low for p in sizes), default=0),
            "high": max((p.high for p in sizes), default=0),
        }

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "status": self.status,
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "pass_number": self.pass_number,
            "resumed": self.resumed,
            "ranges": self.ranges,
            "ranges_copied": len(self.results),
            "ranges_skipped": self.ranges_skipped,
            "rows_read": c.read,
            "rows_written": c.written,
            "rows_rejected": c.rejected,
            "rows_skipped": c.skipped,
            "bytes": c.bytes,
            "pass_rows_rejected": self.pass_rows_rejected,
            "bytes_read": sum(r.bytes_read for r in self.results),
            "read_retries": sum(r.read_retries for r in self.results),
            "write_retries": sum(r.write_retries for r in self.results),
            "elapsed_s": round(self.elapsed_s, 3),
            "plan_s": self.plan_s,
            "copy_s": self.copy_s,
            "rows_per_s": round(self.rows_per_s, 1),
            "rejects_file": self.rejects_file,
            "run_folder": self.run_folder,
            "error": self.error,
            "workers": self.workers(),
            "window": self.window(),
            "open_with": self.open_with if self.finished else None,
        }

    def lines(self) -> str:
        c, data = self.counts, self.as_dict()
        rejected = f"{c.rejected:,}"
        if self.pass_rows_rejected != c.rejected:
            rejected += f" ({self.pass_rows_rejected:,} in the whole pass)"
        rows = [
            ("status", self.status + (" (dry run: nothing written)" if self.dry_run else "")),
            ("source -> target", f"{self.source} -> {self.target}"),
            ("pass", f"{self.pass_number}" + (" (resumed)" if self.resumed else "")),
            ("ranges", f"{self.ranges} planned, {len(self.results)} copied now, {self.ranges_skipped} done before"),
            ("rows read", f"{c.read:,}"),
            ("rows written", f"{c.written:,}" + (" (would be)" if self.dry_run else "")),
            ("rows rejected", rejected),
            ("rows skipped (unchanged)", f"{c.skipped:,}"),
            ("read = written + rejected + skipped", "yes" if c.balanced else "NO"),
            ("plan time", f"{self.plan_s:.1f} s"),
            ("copy time", f"{self.copy_s:.1f} s ({self.rows_per_s:,.0f} rows/s)"),
            ("total time", f"{self.elapsed_s:.1f} s"),
        ]
        for name, w in sorted(data["workers"].items()):
            rows.append(
                (f"worker {name}", f"{w['ranges']:,.0f} ranges, {w['rows']:,.0f} rows, {w['rows_per_s']:,.0f} rows/s")
            )
        window = data["window"]
        if window["high"]:
            rows.append(
                (
                    "writes in flight",
                    f"{window['low']} to {window['high']} (backed off {window['backoffs']} times)",
                )
            )
        if data["write_retries"] or data["read_retries"]:
            rows.append(
                (
                    "retries",
                    f"{data['write_retries']} writes, {data['read_retries']} reads (the page was halved at each)",
                )
            )
        if self.rejects_file:
            rows.append(("rejects file", self.rejects_file))
        return table(rows) + (handoff_lines(self.open_with) if self.finished else "")


VERIFY_LABELS = {
    "matching": "matching",
    "missing": "missing (in source, never copied to target)",
    "different": "different",
    "target_newer": "target newer (written by the application: not an error)",
    "deleted_in_target": "copied, then deleted in target (by the application or expired: not an error)",
    "extra": "extra (in target, not in source)",
    "extra_deleted": "extra, written by the migration, deleted now (--delete-extra)",
    "rejected": "rejected by the rules (not expected in target)",
}


@dataclass
class VerifySummary:
    source: str
    target: str
    counts: VerifyCounts
    elapsed_s: float = 0.0
    open_with: dict[str, Any] | None = None  # how to open the target (handoff.open_with)
    dry_run: bool = False  # --delete-extra counted what it would delete, and deleted nothing
    run_folder: str | None = None

    @property
    def clean(self) -> bool:
        return self.counts.clean

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "clean" if self.clean else "differences",
            "source": self.source,
            "target": self.target,
            "source_rows": self.counts.source_rows,
            **self.counts.counts,
            "examples": {k: v for k, v in self.counts.examples.items() if v},
            "elapsed_s": round(self.elapsed_s, 3),
            "dry_run": self.dry_run,
            "open_with": self.open_with if self.clean else None,
        }

    def lines(self) -> str:
        rows = [
            ("verify", "clean" if self.clean else "DIFFERENCES FOUND"),
            ("source -> target", f"{self.source} -> {self.target}"),
            ("source rows", f"{self.counts.source_rows:,}"),
        ]
        for c in CATEGORIES:
            ex = self.counts.examples[c]
            label = VERIFY_LABELS[c]
            if c == "extra_deleted" and self.dry_run:
                label = "extra, written by the migration, would be deleted (--delete-extra --dry-run: nothing deleted)"
            rows.append((label, f"{self.counts.counts[c]:,}" + (f"  e.g. {', '.join(ex)}" if ex else "")))
        rows.append(("time", f"{self.elapsed_s:.1f} s"))
        return table(rows) + (handoff_lines(self.open_with) if self.clean else "")
