"""The one refill loop (scheduler.run_all) on threads, with fake tasks: no node needed."""

from __future__ import annotations

import threading
import time

import pytest

from cassio_migration.errors import FatalError, Interrupted
from cassio_migration.scheduler import run_all, threads


def sleeper(stop: threading.Event, durations: dict[int, float], started: list[int]):  # type: ignore[no-untyped-def]
    def task(item: int) -> int | None:
        started.append(item)
        if stop.wait(durations[item]):
            return None  # stopped before it finished
        return item

    return task


def test_a_slow_task_never_leaves_the_other_slots_idle() -> None:
    """3 slots, one task of 0.9 s and six of 0.3 s: the ideal is max(sum / slots, longest) = 0.9 s.

    Lock-step batches of three would take 0.9 + 0.3 + 0.3 = 1.5 s.
    """
    durations = {0: 0.9, **{i: 0.3 for i in range(1, 7)}}
    stop, started, results = threading.Event(), [], []
    began = time.monotonic()
    with threads(3, sleeper(stop, durations, started), stop.set) as backend:
        run_all(durations, backend, results.append)
    took = time.monotonic() - began
    assert sorted(results) == list(durations)
    assert 0.85 <= took < 1.25, took


def test_the_first_failure_stops_the_run_and_starts_no_other_task() -> None:
    stop, started = threading.Event(), []

    def task(item: int) -> int:
        started.append(item)
        if item == 1:
            raise FatalError("range 1 failed")
        stop.wait(5)  # the others run until told to stop
        return item

    began = time.monotonic()
    with pytest.raises(FatalError, match="range 1 failed"), threads(2, task, stop.set) as backend:
        run_all(range(10), backend, lambda r: None)
    assert stop.is_set() and sorted(started) == [0, 1]  # task 0 was stopped, 2.. never started
    assert time.monotonic() - began < 2


def test_ctrl_c_stops_the_running_tasks_and_raises_interrupted() -> None:
    durations = {0: 0.05, 1: 5.0, 2: 5.0, 3: 5.0}
    stop, started = threading.Event(), []

    def on_result(result: int) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C came while the loop handled a result

    began = time.monotonic()
    with pytest.raises(Interrupted) as info, threads(2, sleeper(stop, durations, started), stop.set) as backend:
        run_all(durations, backend, on_result)
    assert stop.is_set() and sorted(started) == [0, 1]
    assert time.monotonic() - began < 2
    assert str(info.value) == "interrupted: the state is saved; run the same command again to resume"
    assert info.value.exit_code == 130


def test_results_arrive_as_tasks_end_and_stopped_tasks_give_none() -> None:
    durations = {0: 1.0, 1: 0.05, 2: 0.5}
    stop, started, results = threading.Event(), [], []
    with threads(3, sleeper(stop, durations, started), stop.set) as backend:
        run_all(durations, backend, results.append)
    assert results == [1, 2, 0]


def test_no_items_is_no_work() -> None:
    with threads(2, lambda item: item, lambda: None) as backend:
        run_all([], backend, lambda r: pytest.fail("no result expected"))
