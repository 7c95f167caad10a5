"""The local node is a real Cassandra 5: VECTOR type, SAI index, ANN query."""

from __future__ import annotations

from cassandra.cluster import Session

from cassio_migration.cql import qualified


def test_ann_query_returns_the_nearest_neighbour(session: Session, keyspace: str) -> None:
    version = session.execute("SELECT release_version FROM system.local").one().release_version
    assert version.startswith("5.0")
    table = qualified(keyspace, "vectors")
    session.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v VECTOR<FLOAT, 3>)")
    session.execute(f"CREATE CUSTOM INDEX ON {table} (v) USING 'StorageAttachedIndex'")
    insert = session.prepare(f"INSERT INTO {table} (id, v) VALUES (?, ?)")
    points = {1: [1.0, 0.0, 0.0], 2: [0.0, 1.0, 0.0], 3: [0.0, 0.0, 1.0], 4: [0.7, 0.7, 0.0]}
    for key, vector in points.items():
        session.execute(insert, (key, vector))
    nearest = session.execute(f"SELECT id FROM {table} ORDER BY v ANN OF [0.1, 0.9, 0.05] LIMIT 1").one()
    assert nearest.id == 2
    two = [r.id for r in session.execute(f"SELECT id FROM {table} ORDER BY v ANN OF [0.9, 0.8, 0.0] LIMIT 2")]
    assert two[0] == 4
