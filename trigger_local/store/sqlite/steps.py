"""SQLite area for a run's durable records, `run_steps` (store/step_areas.py has the contract)."""

from __future__ import annotations

from typing import Any

from ..models import RunStep
from .rows import from_row, insert_sql, to_row
from .sql import Sql

# plain SQL both SQLite and PostgreSQL take: a second insert at a seq changes nothing
#: the migration that made the table (schema.py lists it): a run's durable records by call order,
#: what a replayed attempt walks instead of doing them again (docs/durability.md)
MIGRATION = """
CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    result TEXT,
    result_type TEXT NOT NULL DEFAULT 'application/json',
    waitpoint_id TEXT,
    child_run_id TEXT,
    batch_id TEXT,
    attempt INTEGER NOT NULL,
    created_at REAL NOT NULL,
    completed_at REAL,
    PRIMARY KEY (run_id, seq)
);
"""
_INSERT = insert_sql("run_steps", RunStep) + " ON CONFLICT (run_id, seq) DO NOTHING"


class SqliteSteps:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def for_run(self, run_id: str) -> list[RunStep]:
        rows = self._sql.all("SELECT * FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,))
        return [from_row(RunStep, r) for r in rows]

    async def get(self, run_id: str, seq: int) -> RunStep | None:
        row = self._sql.one("SELECT * FROM run_steps WHERE run_id = ? AND seq = ?",
                            (run_id, seq))
        return None if row is None else from_row(RunStep, row)

    async def insert(self, step: RunStep) -> bool:
        return self._sql.run(_INSERT, to_row(step)) > 0

    async def update(self, run_id: str, seq: int, **changes: Any) -> bool:
        return self._sql.update("run_steps", RunStep, "run_id", run_id, changes, " AND seq = ?",
                                (seq,))
