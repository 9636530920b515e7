"""SQLite area for a run's durable records, `run_steps` (store/step_areas.py has the contract)."""

from __future__ import annotations

from typing import Any

from ..models import RunStep
from .rows import from_row, insert_sql, to_row
from .sql import Sql

# plain SQL both SQLite and PostgreSQL take: a second insert at a seq changes nothing
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
