"""lease.py's logic without a node: who crashed here, the message naming the holder, the renewal loop.

A fake session answers the lease's lightweight transactions; the CQL itself is exercised on the
real node (tests/test_adversary.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from cassio_migration.errors import FatalError
from cassio_migration.lease import Lease, LeaseHeld, _crashed_here, _ms, _utc

HOST = socket.gethostname()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def alive() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this machine: its own, so that a wrong signal harms no one else."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_crashed_here_only_for_a_gone_process_of_this_machine(alive: subprocess.Popen[bytes]) -> None:
    gone = dead_pid()
    assert _crashed_here(f"{HOST}:{gone}:abcd1234")
    assert _crashed_here(f"{HOST}:{gone}")  # no suffix
    assert not _crashed_here(f"{HOST}:{os.getpid()}:abcd1234")  # this very process
    assert not _crashed_here(f"{HOST}:{alive.pid}:abcd1234")
    with pytest.raises(subprocess.TimeoutExpired):  # asked, not signalled
        alive.wait(0.5)
    assert not _crashed_here(f"other-{HOST}:{gone}:abcd1234")  # another machine's: cannot tell
    assert not _crashed_here(f"{HOST}:x{gone}:abcd1234")
    assert not _crashed_here(None) and not _crashed_here("")


def test_crashed_here_is_false_for_another_users_live_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def kill(pid: int, sig: int) -> None:
        raise PermissionError

    monkeypatch.setattr(os, "kill", kill)
    assert not _crashed_here(f"{HOST}:{os.getpid() + 1}:x")


def test_timestamps_in_ms_and_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    # UTC whatever the machine's time zone.
    monkeypatch.setenv("TZ", "JST-9")  # a POSIX rule: no tz database needed
    time.tzset()
    try:
        assert _ms(datetime(2026, 1, 2, 3, 4, 5, 678000)) == 1767323045678  # a naive datetime is UTC
        assert _utc(1767323045678) == "2026-01-02 03:04:05"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert _ms(datetime(2026, 1, 2, 3, 4, 5, 678000)) == 1767323045678  # a naive datetime is UTC
    assert _ms(None) == 0
    assert _utc(1767323045678) == "2026-01-02 03:04:05"


def naive_utc(ms: int) -> datetime:
    """As the driver gives a timestamp column."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


class Result:
    def __init__(self, applied: bool, owner: str | None = None, taken: int = 0, expires: int = 0) -> None:
        self.was_applied = applied
        self._row = SimpleNamespace(owner=owner, taken_at=naive_utc(taken), expires_at=naive_utc(expires))

    def one(self) -> Any:
        return self._row


class Session:
    """Answers each statement with the next result given (an exception is raised)."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, Any]] = []

    def execute(self, query: str, params: Any = None, timeout: float | None = None) -> Any:
        self.calls.append((query, params))
        result = self.results.pop(0) if self.results else Result(True)
        if isinstance(result, BaseException):
            raise result
        return result


def test_acquire_takes_a_free_lease_with_its_ttl_and_release_lets_it_go() -> None:
    session = Session(Result(True))
    lease = Lease(session, "ks", "ks.target", 30.4)  # type: ignore[arg-type]
    before = int(time.time() * 1000)
    lease.acquire()
    query, (job, owner, taken, expires) = session.calls[0]
    assert query.startswith('INSERT INTO "ks"."cassio_migration_leases" (') and "IF NOT EXISTS USING TTL 30" in query
    assert (job, owner) == ("ks.target", lease.owner) and owner.startswith(f"{HOST}:{os.getpid()}:")
    assert before <= taken <= before + 5000 and expires == taken + 30_000
    lease.check()
    lease.release()
    assert lease._thread is None
    query, params = session.calls[-1]
    assert query.startswith("DELETE") and params == ("ks.target", lease.owner)


def test_a_lease_held_elsewhere_names_its_holder_and_when_it_expires() -> None:
    now = int(time.time() * 1000)
    held = Result(False, "other-host:4242:cafe0123", taken=1767323045000, expires=now + 20_400)
    lease = Lease(Session(held), "ks", "ks.target", 30)  # type: ignore[arg-type]
    with pytest.raises(LeaseHeld) as raised:
        lease.acquire()
    message = str(raised.value)
    assert "process 4242 on other-host holds its lease since 2026-01-02 03:04:05 UTC" in message
    assert "(target ks.target)" in message and ("(20 s)" in message or "(21 s)" in message)
    assert f"renewed until {_utc(now + 20_400)} UTC" in message
    assert raised.value.exit_code == 2 and lease._thread is None


def test_a_retried_insert_finds_its_own_lease() -> None:
    session = Session()
    lease = Lease(session, "ks", "j", 30)  # type: ignore[arg-type]
    session.results = [Result(False, lease.owner)]
    lease.acquire()  # no LeaseHeld
    lease.release()


def test_a_lease_of_a_crashed_local_run_is_taken_over() -> None:
    crashed = f"{HOST}:{dead_pid()}:dead0000"
    session = Session(Result(False, crashed), Result(True))
    lease = Lease(session, "ks", "j", 30)  # type: ignore[arg-type]
    lease.acquire()
    query, params = session.calls[1]
    assert query.startswith("UPDATE") and "IF owner = %s" in query and "USING TTL 30" in query
    assert params[0] == lease.owner and params[-2:] == ("j", crashed)
    lease.release()


def test_a_takeover_that_loses_the_race_names_the_winner() -> None:
    crashed = f"{HOST}:{dead_pid()}:dead0000"
    now = int(time.time() * 1000)
    session = Session(Result(False, crashed), Result(False, "winner:77:x", now, now + 30_000))
    with pytest.raises(LeaseHeld, match="process 77 on winner"):
        Lease(session, "ks", "j", 30).acquire()  # type: ignore[arg-type]


def test_a_live_holder_is_not_taken_over(alive: subprocess.Popen[bytes]) -> None:
    now = int(time.time() * 1000)
    session = Session(Result(False, f"{HOST}:{alive.pid}:x", now, now + 30_000))
    with pytest.raises(LeaseHeld):
        Lease(session, "ks", "j", 30).acquire()  # type: ignore[arg-type]
    assert len(session.calls) == 1


def test_the_ttl_is_whole_seconds_and_at_least_one() -> None:
    assert Lease(Session(), "ks", "j", 0.2)._ttl == 1  # type: ignore[arg-type]
    assert Lease(Session(), "ks", "j", 2.6)._ttl == 3  # type: ignore[arg-type]


def test_renewals_keep_the_lease_and_a_refused_renewal_loses_it() -> None:
    session = Session(Result(True), Result(True), Result(True), Result(False, "thief:1:x"))
    lease = Lease(session, "ks", "j", 0.3)  # type: ignore[arg-type]
    started_ms = time.time() * 1000
    lease.acquire()
    assert lease._thread is not None
    lease._thread.join(5)
    assert lease.lost
    renewals = session.calls[1:]
    assert len(renewals) == 3 and all(q.startswith("UPDATE") and "IF owner = %s" in q for q, _ in renewals)
    # Every cell again, with the TTL (a cell left to its first TTL would run out): the same owner and
    # taking time, and an expiry a whole lease (1 s, rounded up) past the renewal's own time.
    taken = session.calls[0][1][2]
    assert all(p[:2] == (lease.owner, taken) and p[3:] == ("j", lease.owner) for _, p in renewals)
    assert all(started_ms + 1000 <= p[2] <= time.time() * 1000 + 1000 for _, p in renewals)
    assert all("SET owner = %s, taken_at = %s, expires_at = %s" in q for q, _ in renewals)
    with pytest.raises(FatalError, match=r"it could not renew it within 0.3 s .* another run took the job meanwhile"):
        lease.check()
    lease.release()  # a lost lease is not deleted: it may be another run's now
    assert len(session.calls) == 4


def test_a_failed_renewal_is_tried_again_a_second_later() -> None:
    session = Session(Result(True), OSError("busy"), Result(True), Result(False, "thief:1:x"))
    lease = Lease(session, "ks", "j", 3)  # type: ignore[arg-type]
    started = time.monotonic()
    lease.acquire()
    assert lease._thread is not None
    lease._thread.join(10)
    # A quarter of the lease (0.75 s) to the failed try, 1 s to its retry, 0.75 s to the refused renewal.
    assert lease.lost and 2.3 < time.monotonic() - started < 6


def test_failures_alone_never_lose_the_lease() -> None:
    """A node that does not answer is no proof that another run holds the job: only a refusal is."""
    session = Session(Result(True), OSError("busy"), OSError("busy"), Result(True), Result(False, "thief:1:x"))
    lease = Lease(session, "ks", "j", 0.3)  # type: ignore[arg-type]
    lease.acquire()
    assert lease._thread is not None
    lease._thread.join(10)
    assert lease.lost and len(session.calls) == 5


def test_a_renewal_that_finds_the_lease_gone_takes_it_again() -> None:
    # The conditional update of a row that ran out answers with no owner column: nobody holds it.
    gone = Result(False)
    del gone._row.owner
    session = Session(Result(True), gone, Result(True), Result(False, "thief:1:x"))
    lease = Lease(session, "ks", "j", 0.3)  # type: ignore[arg-type]
    lease.acquire()
    assert lease._thread is not None
    lease._thread.join(5)
    query, params = session.calls[2]
    assert query.startswith("INSERT") and "IF NOT EXISTS" in query and params[:2] == ("j", lease.owner)
    assert lease.lost and len(session.calls) == 4  # taken again, then lost to a run that took it


def test_leaving_after_a_failure_keeps_the_failure() -> None:
    session = Session(Result(True))
    lease = Lease(session, "ks", "j", 60)  # type: ignore[arg-type]
    lease.acquire()
    session.results = [FatalError("node away")]
    lease.policy = lease.policy.__class__(seconds=0)
    lease.__exit__(RuntimeError, None, None)  # the run's own error says more: no second one
    lease2 = Lease(Session(Result(True), FatalError("node away")), "ks", "j", 60)  # type: ignore[arg-type]
    with pytest.raises(FatalError, match="node away"), lease2:
        pass  # no error of its own: the release's is raised
