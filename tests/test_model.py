"""The cutover flow against an adversary, as a state machine on the real node (Hypothesis).

Each example gets a keyspace of its own with a legacy vector table (text keys, dimension 16),
and interleaves:
- legacy inserts, updates and deletes: some with an explicit old write time (a late row: a
  hint, a repair or a restore delivering, after a pass, a write older than it), some with a
  TTL of a few seconds; some with a `metadata_blob` the rules reject (not JSON);
- migrate runs, in process (`workflow.migrate`): whole, killed after some pages (an exception
  raised from the progress callback stops the run as a crash would: writes in flight, ranges
  half done, the pass left running), or overlapping (a run holds the lease, a second migrate
  and a `--verify --delete-extra` are refused with LeaseHeld, exit 2, and change nothing); and
  `python migrate.py` killed with SIGKILL after some ranges (its lease left behind: the next
  run on this machine takes it over; its rejects left in its own worker file);
- the application's cutover, then its puts and deletes in the target through cassio 0.1.x's
  MetadataVectorCassandraTable (write times newer than every legacy row: after the cutover
  legacy writes are late rows, older than it);
- `--verify`, `--verify --delete-extra`, and `--replay` of the latest rejects file, fixed.

The oracle, in memory: the source's rows by last-write-wins on write time; for each key, the
writes that reached the target (copies, the application's, replays, --delete-extra's deletes),
each certain or possible; for each row version (key, write time), whether the migration's
record holds it (yes, maybe). A run that completes its pass copied (and recorded) every live
version written before the pass's first run began; a killed run may have copied any live
version; a version written between the runs of one pass may or may not be copied by it. What
is possible is narrowed by reading the target: each observed row must be one the oracle allows.

Checked after every step (keys whose TTL ends within MARGIN_S of now are left out of that step):
- the target holds, for each key, a row the oracle allows, or none when it allows none;
- no application write lost or overwritten, no application delete resurrected: a key the
  application wrote holds exactly its last write (gc_grace_seconds is the default 10 days:
  out of reach);
- every live source version written before a completed pass began is in the target
  (the transform of that version, unless the application wrote the key since) or, if the
  rules reject it, in a rejects record of some run;
- rows written while a pass is open (between a killed run and the run completing it) are
  guaranteed only after the next completed pass: until then the oracle allows both.
Checked by --verify, after every step when no TTL ends within SETTLE_S (and by the verify rule,
which waits until none does, with or without --delete-extra): its counts per category equal the oracle's (missing only for a version no record holds; deleted_in_target
or missing, extra or extra_deleted, where the record is uncertain after a killed run), its
source row count, and that it is clean exactly when nothing is missing or different.
Checked by each completed run: read = written + rejected + skipped, and it resumes exactly
when a killed run left a pass open.

Not exercised here: legacy writes while a run is copying (the model writes between runs; such
a row is guaranteed only after the next completed pass, as above), clock skew between clients,
gc_grace_seconds running out, and other machines (a lease held elsewhere only expires).

`make test` runs 10 examples of up to 25 steps from a fixed seed (CI_SEED); `make soak`
(HYPOTHESIS_PROFILE=soak) SOAK_EXAMPLES examples of up to SOAK_STEPS steps from a random seed,
printed (MODEL_SEED=N runs it again), and a failure's shortest steps with their
@reproduce_failure blob. Found by it: a --replay'd fix of a rejected row counted as extra
(test_adversary.py::test_a_replayed_fix_of_a_rejected_row_is_not_counted_extra).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import random
import signal
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassio.table.tables import MetadataVectorCassandraTable
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    precondition,
    rule,
)

from cassio_migration import workflow
from cassio_migration.cql import qualified, quote
from cassio_migration.job import Clusters, ConnectionSpec, Job, RunOptions
from cassio_migration.lease import LeaseHeld
from cassio_migration.legacy import create_index_cql, create_table_cql
from cassio_migration.report import Progress
from cassio_migration.state import DIGESTS, JOBS, RANGES
from cassio_migration.verify import CATEGORIES
from tests.helpers import PORT, range_rows, read_report, script_env, start_script, wait_for_ranges

DIMENSION = 16
KEYS = tuple(f"k{i}" for i in range(8))  # few keys: updates, deletes and late rows meet the same rows
APP_KEYS = ("a0", "a1")  # keys only the application writes
MARGIN_S = 3.0  # a TTL ends within this of the oracle's estimate (second-granularity TTLs, the copy's delay)
SETTLE_S = 8.0  # --verify waits until no TTL ends within this (and MARGIN_S): its counts are then exact
HOUR_US = 3_600_000_000
BAD_METADATA = '{"tag": "not JSON'

PROFILES = {
    # make test: a fixed seed (CI_SEED), a bounded number of examples and steps.
    "ci": settings(
        max_examples=10,
        stateful_step_count=25,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # shrinking steps on a node takes long: the blob reproduces
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    ),
    # make soak: random seeds, many examples, longer ones; a failure is shrunk and printed with its blob.
    "soak": settings(
        max_examples=int(os.environ.get("SOAK_EXAMPLES", "150")),
        stateful_step_count=int(os.environ.get("SOAK_STEPS", "35")),
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    ),
}
CI_SEED = 20261206

Content = tuple[str, tuple[float, ...], tuple[tuple[str, str], ...]]  # body, vector, metadata_s as read
Seen = tuple[Content, int]  # a target row as read, and its write time


def vector(n: int) -> tuple[float, ...]:
    """Exact in float32, never zero (the vector index refuses a zero vector)."""
    return tuple((n + i % 3) / 4 for i in range(DIMENSION))


_last_us = 0
_clock = threading.Lock()


def now_us() -> int:
    """Wall clock in microseconds, strictly increasing: no two writes of the model share a write time."""
    global _last_us
    with _clock:
        _last_us = max(_last_us + 1, int(time.time() * 1_000_000))
        return _last_us


@dataclass(frozen=True)
class Version:
    """One legacy write of a row."""

    key: str
    ts: int
    seq: int  # the order of the model's source writes: which came before a pass began
    doc: str
    vector: int
    metadata: str
    expires: float | None  # wall-clock end of its TTL (None: no TTL)

    @property
    def content(self) -> Content | None:
        """The target row the rules make of it (None: rejected)."""
        try:
            metadata = json.loads(self.metadata)
        except ValueError:
            return None
        if not isinstance(metadata, dict):
            return None
        return self.doc, vector(self.vector), tuple(sorted(metadata.items()))


@dataclass(frozen=True)
class Event:
    """A write (content) or delete (None) that reached the target, or (not certain) may have."""

    ts: int
    content: Content | None
    expires: float | None = None
    certain: bool = True
    app: bool = False

    @property
    def order(self) -> tuple[int, bool]:
        return self.ts, self.content is None  # a tombstone wins a tie

    def seen(self, now: float) -> Seen | None:
        if self.content is None or (self.expires is not None and self.expires <= now):
            return None  # an expired write shadows older ones as its tombstone does
        return self.content, self.ts


def traced(step: Callable[..., None]) -> Callable[..., None]:
    """Print a failing step's traceback as it happens: a failure that does not happen again when
    Hypothesis replays the example (a race, a timing) is otherwise reported as flaky, without it."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            step(*args, **kwargs)
        except Exception:
            print(f"model: step {step.__name__}{kwargs or ''} failed:\n{traceback.format_exc()}", flush=True)
            raise

    return run


class Killed(Exception):
    """The run dies here (raised from its progress callback, in a range's thread)."""


class Hook:
    """What the next run does at its progress callback: die after some pages, or wait to be let go."""

    def __init__(self, kill_after: int | None = None, block: bool = False) -> None:
        self.kill_after = kill_after
        self.block = block
        self.pages = 0
        self.fired = False
        self.entered = threading.Event()
        self.go = threading.Event()
        self._lock = threading.Lock()

    def started(self) -> None:
        # The copy's progress is made after the lease is taken and the pass begun, before any range.
        if self.block:
            self.entered.set()
            assert self.go.wait(300), "the overlapping run was never let go"

    def page(self) -> None:
        if self.kill_after is None:
            return
        with self._lock:
            self.pages += 1
            if self.pages >= self.kill_after:
                self.fired = True
        if self.fired:
            raise Killed()


class HookedProgress(Progress):
    """The engine's progress, plus the hook armed for the run that makes it (none: unchanged)."""

    armed: ClassVar[Hook | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook, HookedProgress.armed = HookedProgress.armed, None
        if self.hook is not None:
            self.hook.started()

    def update(self, n: int) -> None:
        if self.hook is not None:
            self.hook.page()
        super().update(n)


def feasible(expected: list[set[str]], got: dict[str, int]) -> bool:
    """Whether each expected item can take one of its categories so that the counts are `got`.

    The uncertain items are {missing, deleted_in_target} or {extra, extra_deleted}: disjoint pairs."""
    fixed = Counter(next(iter(s)) for s in expected if len(s) == 1)
    pairs = Counter(frozenset(s) for s in expected if len(s) > 1)
    spare = {c: got.get(c, 0) - fixed[c] for c in CATEGORIES}
    if any(v < 0 for v in spare.values()):
        return False
    for pair, n in pairs.items():
        if sum(spare[c] for c in pair) != n:
            return False
        for c in pair:
            spare[c] = 0
    return not any(spare.values())


class Totals:
    examples = 0
    steps = 0
    runs: ClassVar[Counter[str]] = Counter()


class MigrationModel(RuleBasedStateMachine):
    session: ClassVar[Session]
    workdir: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        Totals.examples += 1
        self.keyspace = f"m_{uuid.uuid4().hex[:12]}"
        self.folder = self.workdir / self.keyspace
        self.runs_dir = self.folder / "runs"
        self.runs_dir.mkdir(parents=True)
        s = self
        s._cql(
            f"CREATE KEYSPACE {quote(self.keyspace)} WITH replication ="
            " {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        s._cql(create_table_cql(self.keyspace, "legacy", "text", DIMENSION))
        s._cql(create_index_cql(self.keyspace, "legacy"))
        self.legacy = qualified(self.keyspace, "legacy")
        self.target = qualified(self.keyspace, "migrated")
        self.job = Job(
            clusters=Clusters(ConnectionSpec(port=PORT)),
            keyspace=self.keyspace,
            old_table="legacy",
            target_table="migrated",
        )
        self.lines: list[str] = []
        self._progress = workflow.Progress
        workflow.Progress = HookedProgress  # type: ignore[misc]
        # The source.
        self.seq = 0
        self.winner: dict[str, Version] = {}
        self.tomb: dict[str, int] = {}
        self.versions: dict[tuple[str, int], Version] = {}
        # The target and the record.
        self.events: dict[str, list[Event]] = {}
        self.rec: dict[tuple[str, int], str] = {}  # (key, write time) -> "yes" | "maybe"
        self.guaranteed: set[tuple[str, int]] = set()  # versions a completed pass must have copied or rejected
        self.open_pass: tuple[int, int] | None = None  # (seq, time) when the open pass's first run began
        self.last_pass_us: int | None = None  # when the last completed pass began
        self.passes = 0
        self.target_exists = False
        self.cutover_us: int | None = None
        self.app: MetadataVectorCassandraTable | None = None
        self._rejects_cache: dict[str, tuple[float, set[tuple[str, int]]]] = {}

    def teardown(self) -> None:
        workflow.Progress = self._progress  # type: ignore[misc]
        HookedProgress.armed = None
        self._cql(f"DROP KEYSPACE IF EXISTS {quote(self.keyspace)}")
        # A line per example: a soak stopped from outside still tells how far it got.
        print(f"model: {Totals.examples} state machine runs, {Totals.steps} steps so far", flush=True)

    def _cql(self, query: str, params: Any = None, timeout: float = 120) -> Any:
        """The test's own statements wait long: the node is shared, and a busy one answers slowly."""
        return self.session.execute(query, params, timeout=timeout)

    def step(self, name: str) -> None:
        Totals.steps += 1
        Totals.runs[name] += 1

    def options(self, **flags: Any) -> RunOptions:
        # Small and slow-ish on purpose: several ranges of a few pages each, so that a kill lands mid-range.
        return RunOptions(
            concurrency=4,
            parallel_ranges=2,
            page_size=2,
            splits=6,
            retry_seconds=60,
            runs_dir=str(self.runs_dir),
            quiet=True,
            **flags,
        )

    @initialize(bad=st.sampled_from(KEYS), n=st.integers(1, 4))
    @traced
    def legacy_rows(self, bad: str, n: int) -> None:
        """The legacy table as the application left it: a row per key but two, one the rules reject."""
        self.step("legacy_rows")
        for key in KEYS[2:]:
            self._write(key, n, key == bad, None, None)

    # --- the source ---------------------------------------------------------------------------

    def live(self, key: str, now: float) -> Version | None:
        v = self.winner.get(key)
        if v is None or v.ts <= self.tomb.get(key, -1) or (v.expires is not None and v.expires <= now):
            return None
        return v

    def _write_time(self, late: float | None) -> int:
        """Now, or a late row's: older than the last pass's start (and than the cutover), by up to an hour."""
        if late is None and self.cutover_us is None:
            return now_us()
        high = min(t for t in (self.last_pass_us, self.cutover_us, now_us()) if t is not None) - 1
        ts = high - int((1 - (late if late is not None else 1.0)) * HOUR_US)
        while any(v.ts == ts for v in self.versions.values()) or ts in self.tomb.values():
            ts -= 1
        return ts

    @rule(
        key=st.sampled_from(KEYS),
        n=st.integers(1, 4),
        bad=st.sampled_from([False] * 5 + [True]),
        ttl=st.sampled_from([None] * 5 + [2, 5, 30]),  # 30: alive through several steps, verified
        late=st.none() | st.floats(0, 1),
    )
    @traced
    def legacy_write(self, key: str, n: int, bad: bool, ttl: int | None, late: float | None) -> None:
        self.step("legacy_write")
        self._write(key, n, bad, ttl, late)

    def _write(self, key: str, n: int, bad: bool, ttl: int | None, late: float | None) -> None:
        self.seq += 1
        ts = self._write_time(late)
        ttl = None if bad else ttl
        metadata = BAD_METADATA if bad else json.dumps({"tag": f"t{n}"})
        started = time.time()
        using = f"USING TIMESTAMP {ts}" + (f" AND TTL {ttl}" if ttl else "")
        doc = f"doc {key} #{self.seq}"
        self._cql(
            f"INSERT INTO {self.legacy} (document_id, embedding_vector, document, metadata_blob) VALUES (%s, %s, %s, %s)"
            f" {using}",
            (key, list(vector(n)), doc, metadata),
        )
        v = Version(key, ts, self.seq, doc, n, metadata, started + ttl if ttl else None)
        self.versions[(key, ts)] = v
        current = self.winner.get(key)
        if ts > max(current.ts if current else -1, self.tomb.get(key, -1)):
            self.winner[key] = v

    @rule(key=st.sampled_from(KEYS), late=st.none() | st.floats(0, 1))
    @traced
    def legacy_delete(self, key: str, late: float | None) -> None:
        self.step("legacy_delete")
        self.seq += 1
        ts = self._write_time(late)
        self._cql(f"DELETE FROM {self.legacy} USING TIMESTAMP {ts} WHERE document_id = %s", (key,))
        self.tomb[key] = max(ts, self.tomb.get(key, -1))

    # --- migrate runs -------------------------------------------------------------------------

    def _add(self, key: str, event: Event) -> None:
        events = self.events.setdefault(key, [])
        if event not in events:
            events.append(event)

    def _ran(self, t0: float, seq0: int, completed: bool) -> None:
        """What a run that began at (t0, seq0) did, as far as the oracle can tell."""
        t1 = time.time()
        if self.open_pass is None:
            self.open_pass = (seq0, int(t0 * 1_000_000))
        start_seq = self.open_pass[0]
        for key in KEYS:
            v = self.winner.get(key)
            if v is None or v.ts <= self.tomb.get(key, -1):
                continue
            uncertain = False  # a TTL ending during the run: read alive or not
            if v.expires is not None:
                if v.expires < t0 - MARGIN_S:
                    continue
                uncertain = v.expires <= t1 + MARGIN_S
            sure = completed and v.seq < start_seq and not uncertain
            if sure:
                self.guaranteed.add((key, v.ts))
            content = v.content
            if content is None:
                continue
            recorded = self.rec.get((key, v.ts)) == "yes"
            self._add(key, Event(v.ts, content, v.expires, certain=sure or recorded))
            if sure:
                self.rec[(key, v.ts)] = "yes"
            elif not recorded:
                self.rec[(key, v.ts)] = "maybe"
        if completed:
            self.last_pass_us = self.open_pass[1]
            self.open_pass = None
            self.passes += 1

    def _completed(self, data: dict[str, Any], t0: float, seq0: int) -> None:
        """A run that completed its pass: its report (`--report`'s JSON) checked, and what it copied."""
        assert data["status"] in ("done", "done_with_rejects"), data
        assert data["rows_read"] == data["rows_written"] + data["rows_rejected"] + data["rows_skipped"], data
        assert data["resumed"] == (self.open_pass is not None), (data, self.open_pass)
        self._ran(t0, seq0, completed=True)

    @rule()
    @traced
    def migrate(self) -> None:
        self.step("migrate")
        t0, seq0 = time.time(), self.seq
        self.target_exists = True
        self._completed(workflow.migrate(self.job, self.options(), self.lines.append).as_dict(), t0, seq0)

    @rule(pages=st.integers(1, 10))
    @traced
    def migrate_killed(self, pages: int) -> None:
        self.step("migrate_killed")
        t0, seq0 = time.time(), self.seq
        self.target_exists = True
        hook = HookedProgress.armed = Hook(kill_after=pages)
        try:
            summary = workflow.migrate(self.job, self.options(), self.lines.append)
        except Killed:
            assert hook.fired
            self._ran(t0, seq0, completed=False)
            return
        finally:
            HookedProgress.armed = None
        self._completed(summary.as_dict(), t0, seq0)  # it ended before the kill came

    @rule(ranges=st.integers(1, 3))
    @traced
    def migrate_sigkilled(self, ranges: int) -> None:
        """`python migrate.py` killed with SIGKILL once it has done some ranges: it leaves its lease (the
        next run on this machine takes it over), a range half written, its rejects in its worker file."""
        self.step("migrate_sigkilled")
        t0, seq0 = time.time(), self.seq
        self.target_exists = True
        done = sum(r.status == "done" for r in range_rows(self.session, self.keyspace))
        report = self.folder / f"report-{now_us()}.json"
        env = script_env(
            self.keyspace,
            self.folder,
            MIGRATION_SPLITS="6",
            MIGRATION_PAGE_SIZE="2",
            MIGRATION_PARALLEL_RANGES="2",
            MIGRATION_CONCURRENCY="4",
        )
        # Slow (4 rows/s), so that the kill comes while it copies.
        proc = start_script("migrate.py", env, self.folder, "--quiet", "--rate-limit", "4", "--report", str(report))
        with contextlib.suppress(AssertionError):  # it ended first
            wait_for_ranges(self.session, self.keyspace, proc, done + ranges)
        proc.kill()
        _, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            # Killed after its last range, it may have ended the pass already (and not yet exited), or its
            # end of pass may still be in flight: the node answers or drops a request within its write
            # and CAS timeouts (2 s and 1.8 s here), so what it holds after them is what the next run meets.
            time.sleep(5)
            job = self._cql(f"SELECT pass_status FROM {qualified(self.keyspace, JOBS)}").one()
            self._ran(t0, seq0, completed=job.pass_status == "done")
            return
        assert proc.returncode in (0, 1), err
        self._completed(read_report(report), t0, seq0)

    def _snapshot(self) -> Any:
        """What a refused run must leave as it was: the target (rows with a TTL may expire meanwhile: left
        out), the state, the run folders."""
        target = self._cql(f"SELECT row_id, body_blob, metadata_s, vector, TTL(body_blob) FROM {self.target}")
        state = [qualified(self.keyspace, t) for t in (JOBS, RANGES, DIGESTS)]
        return [
            sorted(repr(tuple(r)) for r in target if r[-1] is None),
            *(sorted(repr(tuple(r)) for r in self._cql(f"SELECT * FROM {t}")) for t in state),
            sorted(os.listdir(self.runs_dir)),
        ]

    @rule()
    @traced
    def overlapping_runs(self) -> None:
        self.step("overlapping_runs")
        t0, seq0 = time.time(), self.seq
        self.target_exists = True
        hook = HookedProgress.armed = Hook(block=True)
        outcome: dict[str, Any] = {}

        def first() -> None:
            try:
                outcome["summary"] = workflow.migrate(self.job, self.options(), self.lines.append)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                hook.entered.set()

        thread = threading.Thread(target=first, name="first-run")
        thread.start()
        try:
            assert hook.entered.wait(300)
            assert "error" not in outcome, outcome
            before = self._snapshot()
            attempts: list[Callable[[], Any]] = [
                lambda: workflow.migrate(self.job, self.options(), self.lines.append),
                lambda: workflow.verify(self.job, self.options(delete_extra=True), self.lines.append),
            ]
            for attempt in attempts:
                with pytest.raises(LeaseHeld) as refused:
                    attempt()
                assert refused.value.exit_code == 2
                assert "holds its lease" in str(refused.value)
            assert self._snapshot() == before, "a refused run changed something"
        finally:
            hook.go.set()
            thread.join(300)
            HookedProgress.armed = None
        if "error" in outcome:
            raise outcome["error"]
        self._completed(outcome["summary"].as_dict(), t0, seq0)

    # --- the application ----------------------------------------------------------------------

    @precondition(lambda self: self.passes >= 1 and self.cutover_us is None)
    @rule()
    @traced
    def cutover(self) -> None:
        self.step("cutover")
        self.cutover_us = now_us()
        self.app = MetadataVectorCassandraTable(
            session=self.session,
            keyspace=self.keyspace,
            table="migrated",
            vector_dimension=DIMENSION,
            primary_key_type="TEXT",
            metadata_indexing="all",
            skip_provisioning=True,  # migrate.py made it
        )

    @precondition(lambda self: self.app is not None)
    @rule(key=st.sampled_from(KEYS), n=st.integers(1, 4))
    @traced
    def app_update(self, key: str, n: int) -> None:
        self._put("app_update", key, n)

    @precondition(lambda self: self.app is not None)
    @rule(key=st.sampled_from(APP_KEYS), n=st.integers(1, 4))
    @traced
    def app_insert(self, key: str, n: int) -> None:
        """A row the legacy table never had: --delete-extra must never take it."""
        self._put("app_insert", key, n)

    def _put(self, kind: str, key: str, n: int) -> None:
        self.step(kind)
        assert self.app is not None
        doc = f"app {key} {now_us()}"
        self.app.put(row_id=key, body_blob=doc, vector=list(vector(n)), metadata={"tag": "app"})
        row = self._cql(f"SELECT WRITETIME(body_blob) FROM {self.target} WHERE row_id = %s", (key,)).one()
        self._add(key, Event(row[0], (doc, vector(n), (("tag", "app"),)), app=True))

    @precondition(lambda self: self.app is not None)
    @rule(key=st.sampled_from(KEYS + APP_KEYS))
    @traced
    def app_delete(self, key: str) -> None:
        self.step("app_delete")
        assert self.app is not None
        ts = now_us()  # below the tombstone's own write time, above every write before it
        self.app.delete(row_id=key)
        self._add(key, Event(ts, None, app=True))

    # --- verify, delete-extra, replay ---------------------------------------------------------

    def _expiries(self) -> list[float]:
        ends = [v.expires for v in self.winner.values() if v.expires is not None]
        return ends + [e.expires for events in self.events.values() for e in events if e.expires is not None]

    def _settle(self, ahead: float) -> None:
        """Wait until no TTL ends within `ahead` seconds (nor ended within MARGIN_S)."""
        while True:
            now = time.time()
            near = [t for t in self._expiries() if now - MARGIN_S <= t <= now + ahead + MARGIN_S]
            if not near:
                return
            time.sleep(max(near) - now + MARGIN_S + 0.1)

    def _verdicts(self, seen: dict[str, Seen], now: float, delete_extra: bool) -> dict[str, set[str]]:
        """What --verify must say of each key, from the source, the target as read, and the record."""
        out: dict[str, set[str]] = {}
        for key in KEYS + APP_KEYS:
            v, got = self.live(key, now), seen.get(key)
            if v is not None:
                content = v.content
                recorded = self.rec.get((key, v.ts))
                if content is None:
                    out[key] = {"rejected"}
                elif got is None:
                    out[key] = {"yes": {"deleted_in_target"}, "maybe": {"deleted_in_target", "missing"}}.get(
                        recorded or "", {"missing"}
                    )
                elif got[0] == content:
                    out[key] = {"matching"}
                else:
                    out[key] = {"target_newer"} if got[1] > v.ts else {"different"}
            elif got is not None:
                recorded = self.rec.get((key, got[1])) if delete_extra else None
                out[key] = {"yes": {"extra_deleted"}, "maybe": {"extra", "extra_deleted"}}.get(
                    recorded or "", {"extra"}
                )
        return out

    @precondition(lambda self: self.target_exists)
    @rule()
    @traced
    def verify(self) -> None:
        """Once no TTL ends within SETTLE_S (the invariant's verify skips the steps where one does)."""
        self.step("verify")
        self._settle(SETTLE_S)
        self._verify(delete_extra=False)

    @precondition(lambda self: self.target_exists)
    @rule()
    @traced
    def verify_delete_extra(self) -> None:
        self.step("verify_delete_extra")
        self._settle(SETTLE_S)
        self._verify(delete_extra=True)

    def _verify(self, delete_extra: bool) -> None:
        """--verify (--delete-extra): its counts against the oracle's verdicts on the target as read now."""
        Totals.runs["verify_runs"] += 1
        now = time.time()
        seen = self._check(now)
        expected = self._verdicts(seen, now, delete_extra)
        summary = workflow.verify(self.job, self.options(delete_extra=delete_extra), self.lines.append)
        counts = summary.counts.counts
        # Slower than SETTLE_S (a loaded machine): a TTL may have ended while it read; its counts are not judged.
        judged = not any(now - MARGIN_S <= t <= time.time() + MARGIN_S for t in self._expiries())
        if judged:
            assert feasible(list(expected.values()), counts), (counts, expected)
            assert summary.counts.source_rows == sum(self.live(k, now) is not None for k in KEYS), summary.as_dict()
            assert summary.clean == (counts["missing"] == 0 and counts["different"] == 0)
        else:
            Totals.runs["verify_not_judged"] += 1
        if delete_extra:
            after = self._observe()
            for key, verdicts in expected.items():
                if "extra_deleted" not in verdicts:
                    continue
                ts = seen[key][1]
                if key in after:  # kept: the record does not hold this version
                    assert verdicts == {"extra", "extra_deleted"} or not judged, (key, after[key])
                    self.rec.pop((key, ts), None)
                else:
                    self.rec[(key, ts)] = "yes"
                    self._add(key, Event(ts, None))

    def _rejects_files(self, pattern: str = "rejects.jsonl") -> list[str]:
        return sorted(glob.glob(str(self.runs_dir / "*" / pattern)), key=os.path.getmtime)

    def _rejected(self) -> set[tuple[str, int]]:
        """(key, write time) of every rejects record of every run so far (a killed process's: in its own file)."""
        found: set[tuple[str, int]] = set()
        for path in self._rejects_files("rejects*.jsonl"):
            mtime = os.path.getmtime(path)
            cached = self._rejects_cache.get(path)
            if cached is None or cached[0] != mtime:
                lines = Path(path).read_text().splitlines(keepends=True)
                records = [json.loads(line) for line in lines if line.endswith("\n")]  # not a line cut by the kill
                cached = mtime, {(r["key"], r["row"]["writetime"]) for r in records}
                self._rejects_cache[path] = cached
            found |= cached[1]
        return found

    @precondition(lambda self: self.target_exists)
    @rule()
    @traced
    def replay_fixed_rejects(self) -> None:
        files = self._rejects_files()
        if not files:
            return
        self.step("replay")
        records = [json.loads(line) for line in Path(files[-1]).read_text().splitlines()]
        for r in records:
            r["row"]["metadata_blob"] = json.dumps({"tag": "fixed"})
        fixed = self.folder / f"fixed-{now_us()}.jsonl"
        fixed.write_text("".join(json.dumps(r) + "\n" for r in records))
        summary = workflow.replay(self.job, self.options(), str(fixed), self.lines.append)
        counts = summary.counts
        assert (counts.read, counts.written, counts.rejected) == (len(records), len(records), 0), summary.as_dict()
        for r in records:
            v = self.versions[(r["key"], r["row"]["writetime"])]
            self._add(v.key, Event(v.ts, (v.doc, vector(v.vector), (("tag", "fixed"),))))

    # --- the oracle ---------------------------------------------------------------------------

    def _observe(self) -> dict[str, Seen]:
        try:
            rows = self._cql(
                f"SELECT row_id, body_blob, vector, metadata_s, attributes_blob, WRITETIME(body_blob) AS wt"
                f" FROM {self.target}"
            )
        except InvalidRequest:  # no target yet
            return {}
        seen: dict[str, Seen] = {}
        for r in rows:
            assert r.attributes_blob is None, r  # every writer here stores string metadata, all indexed
            metadata = tuple(sorted((r.metadata_s or {}).items()))
            seen[r.row_id] = (r.body_blob, tuple(r.vector) if r.vector is not None else (), metadata), r.wt
        return seen

    def _near(self, key: str, now: float) -> bool:
        """Whether a TTL of this key ends about now: neither side can be told this step."""
        ends = [e.expires for e in self.events.get(key, []) if e.expires is not None]
        v = self.winner.get(key)
        if v is not None and v.expires is not None:
            ends.append(v.expires)
        return any(abs(t - now) <= MARGIN_S for t in ends)

    def _check(self, now: float) -> dict[str, Seen]:
        """Read the target, check it against the oracle, narrow the oracle to what was read."""
        seen = self._observe()
        rejected: set[tuple[str, int]] | None = None
        for key in sorted(set(self.events) | set(seen) | set(KEYS)):
            if self._near(key, now):
                continue
            got, events = seen.get(key), self.events.get(key, [])
            app = [e for e in events if e.app]
            if app:
                last = max(app, key=lambda e: e.order)
                if last.content is None:
                    assert got is None, f"the application's delete of {key} was undone: {got}"
                else:
                    assert got == last.seen(now), f"the application's write to {key} was lost: {got}"
            v = self.live(key, now)
            if v is not None and (key, v.ts) in self.guaranteed:
                if v.content is None:
                    rejected = self._rejected() if rejected is None else rejected
                    assert (key, v.ts) in rejected, f"{key}@{v.ts} was rejected without a record"
                elif not app:
                    assert got == (v.content, v.ts), f"{key}@{v.ts} was not copied: the target has {got}"
            certain = [e for e in events if e.certain]
            top = max(certain, key=lambda e: e.order) if certain else None
            above = [e for e in events if not e.certain and (top is None or e.order > top.order)]
            allowed = [top.seen(now) if top else None] + [e.seen(now) for e in above]
            assert got in allowed, f"target row {key}: {got}; the oracle allows {allowed}"
            # Narrow: the writes above the one read did not land (or are deletes/expired, if none is read).
            kept = [top] if top else []
            if got is None:
                kept += [e for e in above if e.seen(now) is None]
            else:
                kept = [replace(next(e for e in [*kept, *above] if e.seen(now) == got), certain=True)]
            self.events[key] = kept + [e for e in certain if e.app and e not in kept]
        return seen

    @invariant()
    @traced
    def target_agrees_with_the_oracle(self) -> None:
        now = time.time()
        self._check(now)
        # --verify after every step too, when no TTL ends while it reads (the verify rule waits for that).
        if self.target_exists and not any(now - MARGIN_S <= t <= now + SETTLE_S + MARGIN_S for t in self._expiries()):
            self._verify(delete_extra=False)


@pytest.mark.slow
def test_the_cutover_flow_against_an_adversary(session: Session, tmp_path: Path) -> None:
    MigrationModel.session = session
    MigrationModel.workdir = tmp_path
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    # The soak's seed is random unless MODEL_SEED gives one: it is printed, to run the same examples again.
    chosen = os.environ.get("MODEL_SEED") or (str(random.randrange(2**32)) if profile == "soak" else str(CI_SEED))
    print(f"\nmodel ({profile}): seed {chosen} (reproduce: MODEL_SEED={chosen} HYPOTHESIS_PROFILE={profile})")
    started = time.monotonic()
    default = session.cluster.profile_manager.default  # the helpers' reads too wait long: a busy shared node
    patience, default.request_timeout = default.request_timeout, 120
    try:
        seed(int(chosen))(get_state_machine_test(MigrationModel, settings=PROFILES[profile]))()
    finally:
        default.request_timeout = patience
        print(
            f"model ({profile}, seed {chosen}): {Totals.examples} state machine runs, {Totals.steps} steps"
            f" in {time.monotonic() - started:.0f} s; by kind: {dict(sorted(Totals.runs.items()))}"
        )
