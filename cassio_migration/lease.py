"""One run of a job at a time: a lease on the job, taken with a lightweight transaction.

The lease is a row beside the job's state with a TTL, so that a run that crashed lets it go by
itself; one that ran on this machine and is gone is taken over at once. The run that holds it
renews it every quarter of its time. A run whose lease ran out while it could not reach the
database (a busy node, a pause) takes it again if no other run took it meanwhile, and stops if
one did.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from .cql import qualified
from .errors import FatalError, UsageError
from .retry import RetryPolicy

LEASES = "cassio_migration_leases"


class LeaseHeld(UsageError):
    """Another run holds the job's lease (exit 2)."""


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: Any) -> int:
    """A timestamp column as ms since the epoch (the driver gives a naive UTC datetime)."""
    return int(value.replace(tzinfo=UTC).timestamp() * 1000) if value is not None else 0


def owner_parts(owner: str | None) -> tuple[str, str]:
    """A lease's owner, `host:pid:run`, as (host, pid)."""
    host, _, rest = (owner or "").partition(":")
    return host, rest.partition(":")[0]


def holder(owner: str | None) -> str:
    """A lease's owner as a user reads it: `process PID on HOST`."""
    host, pid = owner_parts(owner)
    return f"process {pid} on {host}"


def _crashed_here(owner: str | None) -> bool:
    """Whether a lease's owner (`host:pid:...`) was a process of this machine that no longer runs."""
    host, pid = owner_parts(owner)
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Lease:
    """The job's lease, held from `acquire` to `release`; `check` raises once it is lost."""

    def __init__(
        self,
        session: Session,
        keyspace: str,
        job: str,
        seconds: float,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.session = session
        self.job = job
        self.seconds = seconds
        self.policy = policy
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = False
        self._table = qualified(keyspace, LEASES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._taken_ms = 0

    def create_table(self) -> None:
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} (job text PRIMARY KEY, owner text, taken_at timestamp,"
            " expires_at timestamp)"
        )

    def _execute(self, query: str, params: Any = None) -> Any:
        return self.policy.call("taking the job's lease", lambda: self.session.execute(query, params))

    @property
    def _ttl(self) -> int:
        return max(1, round(self.seconds))

    @property
    def _insert(self) -> str:
        return (
            f"INSERT INTO {self._table} (job, owner, taken_at, expires_at) VALUES (%s, %s, %s, %s)"
            f" IF NOT EXISTS USING TTL {self._ttl}"
        )

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeld naming the run that holds it."""
        now = self._taken_ms = int(time.time() * 1000)
        expires = now + self._ttl * 1000
        result = self._execute(self._insert, (self.job, self.owner, now, expires))
        row = result.one()
        if not result.was_applied and _crashed_here(row.owner):
            # Its holder was a process of this machine that is gone (killed, or the machine restarted).
            result = self._execute(
                f"UPDATE {self._table} USING TTL {self._ttl} SET owner = %s, taken_at = %s, expires_at = %s"
                " WHERE job = %s IF owner = %s",
                (self.owner, now, expires, self.job, row.owner),
            )
            if not result.was_applied and getattr(result.one(), "owner", None) is None:
                result = self._execute(self._insert, (self.job, self.owner, now, expires))  # it ran out meanwhile
            row = result.one()
        # A retried insert whose first try went through finds our own lease.
        if not result.was_applied and row.owner != self.owner:
            left = max(0, round((_ms(row.expires_at) - now) / 1000))
            raise LeaseHeld(
                f"another run of this job (target {self.job}) is running: {holder(row.owner)} holds its lease"
                f" since {_utc(_ms(row.taken_at))} UTC, renewed until {_utc(_ms(row.expires_at))} UTC ({left} s);"
                " wait for that run to end (a run that crashed lets its lease go by then)"
            )
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        """Renew every quarter of the lease; a failed try is tried again each second, each try given a
        short timeout (a busy node must not hold one renewal past the lease)."""
        beat = self.seconds / 4
        pause = beat
        while not self._stop.wait(pause):
            now = int(time.time() * 1000)
            try:
                # Every cell again: a TTL is a cell's, and an owner cell left to its first TTL would run out.
                result = self.session.execute(
                    f"UPDATE {self._table} USING TTL {self._ttl} SET owner = %s, taken_at = %s, expires_at = %s"
                    " WHERE job = %s IF owner = %s",
                    (self.owner, self._taken_ms, now + self._ttl * 1000, self.job, self.owner),
                    timeout=max(1.0, self.seconds / 8),
                )
                if not result.was_applied and getattr(result.one(), "owner", None) is None:
                    # Ran out while this run could not reach the database; nobody took it meanwhile.
                    result = self.session.execute(
                        self._insert,
                        (self.job, self.owner, now, now + self._ttl * 1000),
                        timeout=max(1.0, self.seconds / 8),
                    )
            except Exception:  # a slow, busy or absent node: try again in a second
                pause = 1.0
                continue
            if not result.was_applied:
                self.lost = True  # another run holds the job now
                return
            pause = beat

    def check(self) -> None:
        """Raise FatalError if the lease was lost: another run may be working on the job now."""
        if self.lost:
            raise FatalError(
                f"this run lost its lease on the job: it could not renew it within {self.seconds:g} s"
                " (MIGRATION_LEASE_SECONDS), and another run took the job meanwhile; this one stopped,"
                " so that two runs never work on one job at once"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self.lost:
            self.policy.call(
                "letting the job's lease go",
                lambda: self.session.execute(
                    f"DELETE FROM {self._table} WHERE job = %s IF owner = %s", (self.job, self.owner)
                ),
            )

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        try:
            self.release()
        except FatalError:
            if kind is None:
                raise
            # The run already failed (a node away, say): its error says more; the lease's TTL frees the job.
