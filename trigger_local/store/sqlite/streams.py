"""SqliteStreams: a run's realtime streams (store/stream_areas.py). One `streams` row per
(run, key) keeps the stream's length, so an append needs no MAX() over its chunks; the chunks
are a WITHOUT ROWID table keyed by (stream, index): a read from any index is one range scan."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import StreamChunk
from .sql import Sql


class SqliteStreams:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def _stream(self, run_id: str, key: str) -> tuple[int, int] | None:
        row = self._sql.one("SELECT id, length FROM streams WHERE run_id = ? AND key = ?",
                            (run_id, key))
        return (int(row["id"]), int(row["length"])) if row is not None else None

    async def keys(self, run_id: str) -> list[str]:
        rows = self._sql.all("SELECT key FROM streams WHERE run_id = ? ORDER BY id", (run_id,))
        return [str(r["key"]) for r in rows]

    async def chunks(self, run_id: str, key: str, after: int = -1,
                     limit: int = 1000) -> list[StreamChunk]:
        rows = self._sql.all(
            "SELECT c.idx, c.data, c.at FROM streams s JOIN stream_chunks c ON c.stream_id = s.id "
            "WHERE s.run_id = ? AND s.key = ? AND c.idx > ? ORDER BY c.idx LIMIT ?",
            (run_id, key, after, limit))
        return [StreamChunk(int(r["idx"]), str(r["data"]), float(r["at"])) for r in rows]

    async def length(self, run_id: str, key: str) -> int:
        found = self._stream(run_id, key)
        return found[1] if found is not None else 0

    async def last_client_index(self, run_id: str, key: str, client_id: str) -> int:
        found = self._stream(run_id, key)
        if found is None:
            return -1
        row = self._sql.one("SELECT MAX(client_idx) AS m FROM stream_chunks "
                            "WHERE stream_id = ? AND client_id = ?", (found[0], client_id))
        return int(row["m"]) if row is not None and row["m"] is not None else -1

    async def create(self, run_id: str, key: str, at: float) -> bool:
        return self._sql.run("INSERT OR IGNORE INTO streams (run_id, key, length, created_at, "
                             "updated_at) VALUES (?,?,0,?,?)", (run_id, key, at, at)) > 0

    async def append(self, run_id: str, key: str, data: Sequence[str], at: float,
                     client_id: str | None = None, first_client_index: int = 0) -> int:
        await self.create(run_id, key, at)
        found = self._stream(run_id, key)
        assert found is not None  # created above, in this transaction
        stream_id, length = found
        self._sql.many(
            "INSERT INTO stream_chunks (stream_id, idx, data, at, client_id, client_idx) "
            "VALUES (?,?,?,?,?,?)",
            [(stream_id, length + n, text, at, client_id,
              None if client_id is None else first_client_index + n)
             for n, text in enumerate(data)])
        length += len(data)
        self._sql.run("UPDATE streams SET length = ?, updated_at = ? WHERE id = ?",
                      (length, at, stream_id))
        return length

    async def delete_older_than(self, at: float) -> int:
        self._sql.run("DELETE FROM stream_chunks WHERE stream_id IN "
                      "(SELECT id FROM streams WHERE updated_at < ?)", (at,))
        return self._sql.run("DELETE FROM streams WHERE updated_at < ?", (at,))
