"""SQLite areas for waitpoints (and the `run_waitpoints` edges that block runs on them) and
batches (store/wait_areas.py has the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...statuses import WaitpointStatus
from ..models import Batch, Waitpoint
from .off_loop import OffLoop
from .rows import from_row, insert_sql, to_row
from .run_pages import merged, token_statements
from .sql import SQL_LIVE, Sql

_INSERT_WAITPOINT = insert_sql("waitpoints", Waitpoint)
_INSERT_BATCH = insert_sql("batches", Batch)
_WAITING = WaitpointStatus.WAITING


class SqliteWaitpoints:
    def __init__(self, sql: Sql, off_loop: OffLoop | None = None) -> None:
        self._sql = sql
        self._off_loop = off_loop  # the reader's lists run there (off_loop.py)

    async def insert(self, waitpoint: Waitpoint) -> None:
        self._sql.run(_INSERT_WAITPOINT, to_row(waitpoint))

    async def get(self, waitpoint_id: str) -> Waitpoint | None:
        row = self._sql.one("SELECT * FROM waitpoints WHERE id = ?", (waitpoint_id,))
        return None if row is None else from_row(Waitpoint, row)

    async def update(self, waitpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        if expected_status is None:
            return self._sql.update("waitpoints", Waitpoint, "id", waitpoint_id, changes)
        return self._sql.update("waitpoints", Waitpoint, "id", waitpoint_id, changes,
                                " AND status = ?", (expected_status,))

    async def find_by_key(self, type_: str, key: str, now: float,
                          project: str | None = None) -> Waitpoint | None:
        row = self._sql.one(
            "SELECT * FROM waitpoints WHERE type = ? AND idempotency_key = ? AND project IS ? "
            "AND (idempotency_expires_at IS NULL OR idempotency_expires_at > ?) "
            "ORDER BY created_at DESC LIMIT 1", (type_, key, project, now))
        return None if row is None else from_row(Waitpoint, row)

    async def page(self, *, type_: str, statuses: Sequence[str] | None = None,
                   tags: Sequence[str] | None = None, idempotency_key: str | None = None,
                   created_from: float | None = None, created_to: float | None = None,
                   after: str | None = None, before: str | None = None,
                   limit: int = 25, project: str | None = None) -> list[Waitpoint]:
        def read(sql: Sql) -> list[Waitpoint]:
            cursor: tuple[float, str] | None = None
            if after or before:
                row = sql.one("SELECT created_at, id FROM waitpoints WHERE id = ?",
                              (after or before,))
                if row is None:
                    return []
                cursor = (row["created_at"], row["id"])
            ascending = bool(before) and not after
            texts = token_statements(type_, list(statuses or []), tags, idempotency_key,
                                     (created_from, created_to), cursor, ascending, limit,
                                     project)
            rows = merged(sql, texts, ascending, limit)
            return [from_row(Waitpoint, r) for r in rows]

        # a tag's tokens checked for a status one by one may be many rows: off the loop
        if self._off_loop is None or not (tags and statuses):
            return read(self._sql)
        return await self._off_loop.run(read)

    async def block(self, run_id: str, waitpoint_ids: Sequence[str], at: float) -> None:
        self._sql.many("INSERT OR IGNORE INTO run_waitpoints (run_id, waitpoint_id, created_at) "
                       "VALUES (?,?,?)", [(run_id, w, at) for w in waitpoint_ids])

    async def unblock(self, run_id: str) -> None:
        self._sql.run("DELETE FROM run_waitpoints WHERE run_id = ?", (run_id,))

    async def blocking(self, run_id: str) -> list[Waitpoint]:
        rows = self._sql.all(
            "SELECT w.* FROM run_waitpoints rw JOIN waitpoints w ON w.id = rw.waitpoint_id "
            "WHERE rw.run_id = ?", (run_id,))
        return [from_row(Waitpoint, r) for r in rows]

    async def pending_count(self, run_id: str) -> int:
        row = self._sql.one(
            "SELECT COUNT(*) AS n FROM run_waitpoints rw JOIN waitpoints w "
            f"ON w.id = rw.waitpoint_id WHERE rw.run_id = ? AND w.status = '{_WAITING}'",
            (run_id,))
        return int(row["n"]) if row is not None else 0

    async def blocked_runs(self, waitpoint_id: str) -> list[str]:
        rows = self._sql.all("SELECT run_id FROM run_waitpoints WHERE waitpoint_id = ?",
                             (waitpoint_id,))
        return [r["run_id"] for r in rows]

    async def waiting_runs(self, waitpoint_ids: Sequence[str]) -> dict[str, list[str]]:
        if not waitpoint_ids:
            return {}
        marks = ",".join("?" * len(waitpoint_ids))
        ids = tuple(waitpoint_ids)
        rows = self._sql.all(
            "SELECT json_extract(e.data, '$.waitpoint_id') AS wp, e.run_id FROM events e "
            "JOIN waitpoints w ON w.id = json_extract(e.data, '$.waitpoint_id') "
            f"WHERE e.type = 'run.waiting' AND json_extract(e.data, '$.waitpoint_id') IN ({marks}) "
            f"AND w.status != '{_WAITING}' ORDER BY e.seq", ids)
        rows += self._sql.all("SELECT waitpoint_id AS wp, run_id FROM run_waitpoints "
                              f"WHERE waitpoint_id IN ({marks})", ids)
        out: dict[str, list[str]] = {}
        for row in rows:
            runs = out.setdefault(row["wp"], [])
            if row["run_id"] and row["run_id"] not in runs:
                runs.append(row["run_id"])
        return out


class SqliteBatches:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def insert(self, batch: Batch) -> None:
        self._sql.run(_INSERT_BATCH, to_row(batch))

    async def get(self, batch_id: str) -> Batch | None:
        row = self._sql.one("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return None if row is None else from_row(Batch, row)

    async def find_by_key(self, key: str, project: str | None = None) -> Batch | None:
        row = self._sql.one("SELECT * FROM batches WHERE idempotency_key = ? AND project IS ? "
                            "ORDER BY created_at DESC LIMIT 1", (key, project))
        return None if row is None else from_row(Batch, row)

    async def update(self, batch_id: str, **changes: Any) -> bool:
        return self._sql.update("batches", Batch, "id", batch_id, changes)

    async def has_unfinished(self, batch_id: str) -> bool:
        # asked after every run that ends: one seek of the index of live batch runs (the
        # query's `completed_at IS NULL` is the index's own WHERE term, which is how SQLite
        # matches them; `status` too, for a finished run written without its time)
        row = self._sql.one(
            "SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_batch_live WHERE batch_id = ? "
            f"AND completed_at IS NULL AND status IN {SQL_LIVE}) AS live", (batch_id,))
        return bool(row is not None and row["live"])

    async def ended(self, limit: int) -> list[str]:
        # only a store daemons share sweeps for these (engine/endings.py): one daemon on this
        # file completes each batch in the transaction that ended its last run
        rows = self._sql.all(
            "SELECT id FROM batches b WHERE status = 'PROCESSING' "
            "AND json_array_length(run_ids) >= run_count AND NOT EXISTS "
            "(SELECT 1 FROM runs INDEXED BY runs_batch_live WHERE batch_id = b.id "
            f"AND completed_at IS NULL AND status IN {SQL_LIVE}) ORDER BY created_at LIMIT ?",
            (limit,))
        return [row["id"] for row in rows]
