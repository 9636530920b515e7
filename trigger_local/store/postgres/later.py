"""PostgreSQL areas for a run's durable records (`run_steps`, store/step_areas.py) and its
realtime streams (store/stream_areas.py); store/sqlite/steps.py and streams.py in PostgreSQL's
words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import RunStep, StreamChunk
from ..sqlite.rows import columns, from_row
from .sql import PgSql, insert_sql, values

_INSERT_STEP = insert_sql("run_steps", RunStep, "ON CONFLICT (run_id, seq) DO NOTHING")
_STEP_COLS = ", ".join(columns(RunStep))


class PgSteps:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def for_run(self, run_id: str) -> list[RunStep]:
        rows = await self._sql.all(f"SELECT {_STEP_COLS} FROM run_steps WHERE run_id = ? "
                                   "ORDER BY seq", (run_id,))
        return [from_row(RunStep, r) for r in rows]

    async def get(self, run_id: str, seq: int) -> RunStep | None:
        row = await self._sql.one(f"SELECT {_STEP_COLS} FROM run_steps WHERE run_id = ? "
                                  "AND seq = ?", (run_id, seq))
        return None if row is None else from_row(RunStep, row)

    async def insert(self, step: RunStep) -> bool:
        return await self._sql.run(_INSERT_STEP, values(step)) > 0

    async def update(self, run_id: str, seq: int, **changes: Any) -> bool:
        return await self._sql.update("run_steps", RunStep, "run_id", run_id, changes,
                                      " AND seq = ?", (seq,))


class PgStreams:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def _stream(self, run_id: str, key: str) -> tuple[int, int] | None:
        row = await self._sql.one("SELECT id, length FROM streams WHERE run_id = ? AND key = ?",
                                  (run_id, key))
        return (int(row["id"]), int(row["length"])) if row is not None else None

    async def keys(self, run_id: str) -> list[str]:
        rows = await self._sql.all("SELECT key FROM streams WHERE run_id = ? ORDER BY id",
                                   (run_id,))
        return [str(r["key"]) for r in rows]

    async def chunks(self, run_id: str, key: str, after: int = -1,
                     limit: int = 1000) -> list[StreamChunk]:
        rows = await self._sql.all(
            "SELECT c.idx, c.data, c.at FROM streams s JOIN stream_chunks c ON c.stream_id = s.id "
            "WHERE s.run_id = ? AND s.key = ? AND c.idx > ? ORDER BY c.idx LIMIT ?",
            (run_id, key, after, limit))
        return [StreamChunk(int(r["idx"]), str(r["data"]), float(r["at"])) for r in rows]

    async def length(self, run_id: str, key: str) -> int:
        found = await self._stream(run_id, key)
        return found[1] if found is not None else 0

    async def last_client_index(self, run_id: str, key: str, client_id: str) -> int:
        found = await self._stream(run_id, key)
        if found is None:
            return -1
        value = await self._sql.value("SELECT MAX(client_idx) FROM stream_chunks "
                                      "WHERE stream_id = ? AND client_id = ?",
                                      (found[0], client_id))
        return int(value) if value is not None else -1

    async def create(self, run_id: str, key: str, at: float) -> bool:
        return await self._sql.run(
            "INSERT INTO streams (run_id, key, length, created_at, updated_at) "
            "VALUES (?,?,0,?,?) ON CONFLICT DO NOTHING", (run_id, key, at, at)) > 0

    async def append(self, run_id: str, key: str, data: Sequence[str], at: float,
                     client_id: str | None = None, first_client_index: int = 0) -> int:
        await self.create(run_id, key, at)
        found = await self._stream(run_id, key)
        assert found is not None  # created above, in this transaction
        stream_id, length = found
        await self._sql.many(
            "INSERT INTO stream_chunks (stream_id, idx, data, at, client_id, client_idx) "
            "VALUES (?,?,?,?,?,?)",
            [(stream_id, length + n, text, at, client_id,
              None if client_id is None else first_client_index + n)
             for n, text in enumerate(data)])
        length += len(data)
        await self._sql.run("UPDATE streams SET length = ?, updated_at = ? WHERE id = ?",
                            (length, at, stream_id))
        return length

    async def delete_older_than(self, at: float) -> int:
        await self._sql.run("DELETE FROM stream_chunks WHERE stream_id IN "
                            "(SELECT id FROM streams WHERE updated_at < ?)", (at,))
        return await self._sql.run("DELETE FROM streams WHERE updated_at < ?", (at,))
