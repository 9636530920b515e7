"""PostgreSQL areas for waitpoints (with the `run_waitpoints` edges that block runs on them)
and batches (store/wait_areas.py has the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...statuses import WaitpointStatus
from ..models import Batch, Waitpoint
from ..sqlite.rows import from_row
from ..sqlite.sql import SQL_LIVE, Where
from .sql import PgSql, created_between, insert_sql, tagged, values

_INSERT_WAITPOINT = insert_sql("waitpoints", Waitpoint)
_INSERT_BATCH = insert_sql("batches", Batch)
_WAITING = WaitpointStatus.WAITING
_WAITED_ON = "((e.data::jsonb) ->> 'waitpoint_id')"


class PgWaitpoints:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, waitpoint: Waitpoint) -> None:
        self._sql.note_timers_of(waitpoint)
        await self._sql.run(_INSERT_WAITPOINT, values(waitpoint))

    async def get(self, waitpoint_id: str) -> Waitpoint | None:
        row = await self._sql.one("SELECT * FROM waitpoints WHERE id = ?", (waitpoint_id,))
        return None if row is None else from_row(Waitpoint, row)

    async def update(self, waitpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        if expected_status is None:
            return await self._sql.update("waitpoints", Waitpoint, "id", waitpoint_id, changes)
        return await self._sql.update("waitpoints", Waitpoint, "id", waitpoint_id, changes,
                                      " AND status = ?", (expected_status,))

    async def find_by_key(self, type_: str, key: str, now: float,
                          project: str | None = None) -> Waitpoint | None:
        row = await self._sql.one(
            "SELECT * FROM waitpoints WHERE type = ? AND idempotency_key = ? "
            "AND project IS NOT DISTINCT FROM ?::text "
            "AND (idempotency_expires_at IS NULL OR idempotency_expires_at > ?) "
            "ORDER BY created_at DESC LIMIT 1", (type_, key, project, now))
        return None if row is None else from_row(Waitpoint, row)

    async def page(self, *, type_: str, statuses: Sequence[str] | None = None,
                   tags: Sequence[str] | None = None, idempotency_key: str | None = None,
                   created_from: float | None = None, created_to: float | None = None,
                   after: str | None = None, before: str | None = None,
                   limit: int = 25, project: str | None = None) -> list[Waitpoint]:
        q = Where()
        q.add("type = ?", type_)
        if project is not None:
            q.add("project = ?", project)
        q.any_of("status", statuses)
        tagged(q, "waitpoints", tags)
        if idempotency_key:
            q.add("idempotency_key = ?", idempotency_key)
        created_between(q, created_from, created_to)
        rows = await self._sql.newest_first("waitpoints", "*", q, after, before, limit)
        return [from_row(Waitpoint, r) for r in rows]

    async def block(self, run_id: str, waitpoint_ids: Sequence[str], at: float) -> None:
        # kept for the commit, like unblock's (pending.py): nobody waits for their answers
        for waitpoint_id in waitpoint_ids:
            await self._sql.keep(
                "run_waitpoints", "INSERT INTO run_waitpoints (run_id, waitpoint_id, created_at) "
                "VALUES (?,?,?) ON CONFLICT DO NOTHING", (run_id, waitpoint_id, at))

    async def unblock(self, run_id: str) -> None:
        await self._sql.keep("run_waitpoints", "DELETE FROM run_waitpoints WHERE run_id = ?",
                             (run_id,))

    async def blocking(self, run_id: str) -> list[Waitpoint]:
        rows = await self._sql.all(
            "SELECT w.* FROM run_waitpoints rw JOIN waitpoints w ON w.id = rw.waitpoint_id "
            "WHERE rw.run_id = ?", (run_id,))
        return [from_row(Waitpoint, r) for r in rows]

    async def pending_count(self, run_id: str) -> int:
        value = await self._sql.value(
            "SELECT COUNT(*) FROM run_waitpoints rw JOIN waitpoints w "
            f"ON w.id = rw.waitpoint_id WHERE rw.run_id = ? AND w.status = '{_WAITING}'",
            (run_id,))
        return int(value or 0)

    async def blocked_runs(self, waitpoint_id: str) -> list[str]:
        rows = await self._sql.all("SELECT run_id FROM run_waitpoints WHERE waitpoint_id = ?",
                                   (waitpoint_id,))
        return [r["run_id"] for r in rows]

    async def waiting_runs(self, waitpoint_ids: Sequence[str]) -> dict[str, list[str]]:
        if not waitpoint_ids:
            return {}
        ids = list(waitpoint_ids)
        rows = await self._sql.all(
            f"SELECT {_WAITED_ON} AS wp, e.run_id FROM events e "
            f"JOIN waitpoints w ON w.id = {_WAITED_ON} "
            f"WHERE e.type = 'run.waiting' AND {_WAITED_ON} = ANY(?::text[]) "
            f"AND w.status != '{_WAITING}' ORDER BY e.seq", (ids,))
        rows += await self._sql.all("SELECT waitpoint_id AS wp, run_id FROM run_waitpoints "
                                    "WHERE waitpoint_id = ANY(?::text[])", (ids,))
        out: dict[str, list[str]] = {}
        for row in rows:
            runs = out.setdefault(row["wp"], [])
            if row["run_id"] and row["run_id"] not in runs:
                runs.append(row["run_id"])
        return out


class PgBatches:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, batch: Batch) -> None:
        await self._sql.run(_INSERT_BATCH, values(batch))

    async def get(self, batch_id: str) -> Batch | None:
        row = await self._sql.one("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return None if row is None else from_row(Batch, row)

    async def find_by_key(self, key: str, project: str | None = None) -> Batch | None:
        row = await self._sql.one("SELECT * FROM batches WHERE idempotency_key = ? AND project "
                                  "IS NOT DISTINCT FROM ?::text ORDER BY created_at DESC LIMIT 1",
                                  (key, project))
        return None if row is None else from_row(Batch, row)

    async def update(self, batch_id: str, **changes: Any) -> bool:
        return await self._sql.update("batches", Batch, "id", batch_id, changes)

    async def has_unfinished(self, batch_id: str) -> bool:
        value = await self._sql.value(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE batch_id = ? "
            f"AND status IN {SQL_LIVE})", (batch_id,))
        return bool(value)

    async def ended(self, limit: int) -> list[str]:
        # the PROCESSING batches are found by their partial index (migration 8)
        rows = await self._sql.all(
            "SELECT id FROM batches b WHERE status = 'PROCESSING' "
            "AND json_array_length(run_ids::json) >= run_count AND NOT EXISTS "
            f"(SELECT 1 FROM runs WHERE batch_id = b.id AND status IN {SQL_LIVE}) "
            "ORDER BY created_at LIMIT ?", (limit,))
        return [row["id"] for row in rows]
