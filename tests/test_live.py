"""Live writes: an application keeps inserting and updating source rows while migrate.py runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session

from cassio_migration.cql import qualified
from tests.helpers import start_migration

pytestmark = pytest.mark.slow


def test_rows_inserted_and_updated_during_the_run_are_in_the_target_after_the_rerun(
    bundle, session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "2000", "--quiet").code == 0
    legacy = qualified(keyspace, "legacy")
    existing = [r.document_id for r in session.execute(f"SELECT document_id FROM {legacy}")]
    insert = session.prepare(
        f"INSERT INTO {legacy} (document_id, embedding_vector, document, metadata_blob) VALUES (?, ?, ?, ?)"
    )
    update = session.prepare(f"UPDATE {legacy} SET document = ?, metadata_blob = ? WHERE document_id = ?")

    proc = start_migration(keyspace, tmp_path, "--rate-limit", "400", MIGRATION_CLOCK_SKEW_SECONDS="0")
    updated = existing[::10]
    expected: dict[uuid.UUID, tuple[str, dict[str, str]]] = {}  # key -> latest (document, metadata as cassio reads it)
    i = 0
    while proc.poll() is None and i < 400:  # the application writes while the copy runs
        if i % 2:
            key = uuid.uuid4()
            session.execute(insert, (key, [float(i + 1)] * 16, f"inserted live {i}", json.dumps({"live": i})))
            expected[key] = (f"inserted live {i}", {"live": str(float(i))})
        else:
            key = updated[(i // 2) % len(updated)]
            session.execute(update, (f"updated live {i}", json.dumps({"updated": i}), key))
            expected[key] = (f"updated live {i}", {"updated": str(float(i))})
        i += 1
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert i > 50, "the writer should have overlapped the copy"

    rerun = bundle("migrate.py", "--quiet", "--report", str(tmp_path / "r.json"))
    assert rerun.code == 0, rerun.err
    assert json.loads((tmp_path / "r.json").read_text())["pass_number"] == 2

    target = qualified(keyspace, "migrated")
    target_rows = {r.row_id: r for r in session.execute(f"SELECT row_id, body_blob, metadata_s FROM {target}")}
    source_keys = {r.document_id for r in session.execute(f"SELECT document_id FROM {legacy}")}
    assert set(target_rows) == source_keys
    for key, (document, metadata) in expected.items():  # every live write is there, with its latest value
        assert target_rows[key].body_blob == document
        assert dict(target_rows[key].metadata_s) == metadata
    verified = bundle("migrate.py", "--verify", "--quiet")
    assert verified.code == 0, verified.out
