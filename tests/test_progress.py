"""Progress off a terminal and the run's log, offline: what a line says, where it goes, what it hides."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from cassio_migration.report import LOG_FILE, Progress, RunLog, duration


def test_duration_reads_as_a_person_says_it() -> None:
    assert [duration(s) for s in (0, 42, 65, 3600, 3725)] == ["0 s", "42 s", "1 min 05 s", "1 h 00 min", "1 h 02 min"]


def test_line_against_the_plans_estimate() -> None:
    progress = Progress(1000, "rows", quiet=True, stream=io.StringIO(), ranges=4)
    progress.update(500)
    progress.range_done()
    line = progress.line()
    progress.close()
    assert re.fullmatch(r"progress: ranges 1/4, rows 500/~1,000 \(50%\), [\d,]+ rows/s, ETA \d+ s", line), line


def test_line_without_an_estimate_follows_the_ranges() -> None:
    progress = Progress(0, "rows", quiet=True, stream=io.StringIO(), ranges=10)
    assert progress.line().endswith("ETA unknown")
    time.sleep(0.2)
    progress.update(30)
    progress.range_done()
    line = progress.line()
    progress.close()
    assert re.fullmatch(r"progress: ranges 1/10, rows 30, [\d,]+ rows/s, ETA \d+ s", line), line


def test_lines_every_n_seconds_to_the_output_and_the_log(tmp_path: Path) -> None:
    printed: list[str] = []
    log = RunLog(printed.append)
    log.open(str(tmp_path))
    progress = Progress(100, "rows", quiet=False, stream=io.StringIO(), ranges=2, every_s=0.1, log=log)
    progress.update(10)
    time.sleep(0.35)
    progress.close()
    assert len(printed) >= 2 and all(p.startswith("progress: ranges 0/2, rows 10/~100 (10%)") for p in printed)
    assert (tmp_path / LOG_FILE).read_text().splitlines() == printed


def test_quiet_progress_goes_to_the_log_only(tmp_path: Path) -> None:
    printed: list[str] = []
    log = RunLog(printed.append)
    log.open(str(tmp_path))
    progress = Progress(100, "rows", quiet=True, stream=io.StringIO(), every_s=0.1, log=log)
    time.sleep(0.25)
    progress.close()
    assert printed == [] and (tmp_path / LOG_FILE).read_text().startswith("progress: rows 0/~100")


def test_run_log_keeps_early_lines_and_masks_secrets(tmp_path: Path) -> None:
    printed: list[str] = []
    log = RunLog(printed.append, secrets=["s3cret-tok"])
    log("source ks.t: before the folder exists")
    log.record("only in the log, token s3cret-tok")
    log.open(str(tmp_path))
    log("pass 1: 4 ranges")
    assert printed == ["source ks.t: before the folder exists", "pass 1: 4 ranges"]
    assert (tmp_path / LOG_FILE).read_text().splitlines() == [
        "source ks.t: before the folder exists",
        "only in the log, token ***",
        "pass 1: 4 ranges",
    ]
