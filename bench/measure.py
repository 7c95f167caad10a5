"""Run one program as a subprocess: wall time, peak resident memory, CPU of it, of the node, of the rest."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

SAMPLE_S = 0.05


@dataclass(frozen=True)
class Measured:
    returncode: int
    wall_s: float
    peak_rss_mb: float  # of the process tree: a multi-process program counts all its processes
    cpu_s: float  # user + system of the program and its children
    node_cpu_s: float | None  # the Cassandra nodes' CPU over the same span, summed (None: no node is local)
    other_cpu_s: float  # the rest of the machine's busy CPU: other work that skews the figures
    stdout: str
    stderr: str


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (None if it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def nodes_cpu_s(pids: Sequence[int]) -> float | None:
    """The nodes' CPU seconds, summed; None without nodes, or when one of them is gone."""
    found = [process_cpu_s(pid) for pid in pids]
    if not found or any(c is None for c in found):
        return None
    return sum(c for c in found if c is not None)


def machine_busy_s() -> float:
    """CPU seconds spent not idle by all cores since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended just in time
        os.killpg(pid, signal.SIGKILL)


def tree_rss_kb(root: int) -> int:
    """Resident kB of a process and all its descendants, now."""
    try:
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # a child may end while we look
            total += proc.memory_info().rss
    return total // 1024


class TreeSampler(threading.Thread):
    """Polls the tree's resident memory: ru_maxrss alone is the largest single process, not the sum."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_S):
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    cmd: Sequence[str], env: Mapping[str, str], cwd: str, node_pids: Sequence[int], timeout_s: float
) -> Measured:
    """Run `cmd` to its end (killed after `timeout_s`) and measure it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        node_before = nodes_cpu_s(node_pids)
        busy_before = machine_busy_s()
        started = time.monotonic()
        # A session of its own, so that a timeout kills the program's whole tree and nothing else.
        proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=out, stderr=err, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(timeout_s, _kill_tree, (proc.pid,))
        killer.start()
        # wait4, not wait: it hands back this child's own rusage (peak RSS, CPU), which getrusage cannot.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        killer.cancel()
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        node_after = nodes_cpu_s(node_pids)
        busy = machine_busy_s() - busy_before
        cpu = usage.ru_utime + usage.ru_stime
        node_cpu = node_after - node_before if node_before is not None and node_after is not None else None
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            wall_s=wall,
            peak_rss_mb=max(sampler.peak_kb, usage.ru_maxrss) / 1024,
            cpu_s=cpu,
            node_cpu_s=node_cpu,
            other_cpu_s=max(0.0, busy - cpu - (node_cpu or 0.0)),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
