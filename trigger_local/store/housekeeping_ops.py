"""Store operations for the daemon's own bookkeeping: task processes, run logs, the request
idempotency cache and a small key/value table. Mixed into `Ops` (store/ops.py)."""

from __future__ import annotations

import json
from typing import Any

from .models import LogEntry, Worker
from .rows import from_row


class HousekeepingOps:
    _db: Any

    async def _one(self, sql: str, params: Any = ()) -> Any: ...  # provided by Ops

    async def _all(self, sql: str, params: Any = ()) -> list[Any]: ...  # provided by Ops

    # -- workers ---------------------------------------------------------------------------
    async def upsert_worker(self, worker: Worker) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO workers (id, version_id, token, pid, started_at, executor) VALUES (?,?,?,?,?,?)",
            (worker.id, worker.version_id, worker.token, worker.pid, worker.started_at, worker.executor))

    async def delete_worker(self, worker_id: str) -> None:
        await self._db.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    async def list_workers(self) -> list[Worker]:
        return [from_row(Worker, r) for r in await self._all("SELECT * FROM workers")]

    # -- logs ------------------------------------------------------------------------------
    async def append_logs(self, entries: list[LogEntry]) -> None:
        await self._db.executemany(
            "INSERT INTO logs (run_id, attempt, at, level, message, attributes, kind, span_id, parent_span_id, ended_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(e.run_id, e.attempt, e.at, e.level, e.message, json.dumps(e.attributes), e.kind, e.span_id,
              e.parent_span_id, e.ended_at) for e in entries])

    async def last_log_id(self) -> int:
        """The highest log id so far (0 for none): new lines get ids above it."""
        row = await self._one("SELECT MAX(id) AS m FROM logs")
        return int(row["m"] or 0) if row is not None else 0

    async def logs(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogEntry]:
        rows = await self._all("SELECT * FROM logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                               (run_id, after_id, limit))
        return [LogEntry(id=r["id"], run_id=r["run_id"], attempt=r["attempt"], at=r["at"], level=r["level"],
                         message=r["message"], attributes=json.loads(r["attributes"]), kind=r["kind"],
                         span_id=r["span_id"], parent_span_id=r["parent_span_id"], ended_at=r["ended_at"])
                for r in rows]

    # -- request idempotency and key/value ----------------------------------------------------
    async def get_cached_response(self, key: str, since: float) -> dict[str, Any] | None:
        row = await self._one("SELECT response FROM request_cache WHERE key = ? AND created_at >= ?", (key, since))
        return None if row is None else json.loads(row["response"])

    async def put_cached_response(self, key: str, at: float, response: dict[str, Any]) -> None:
        await self._db.execute("INSERT OR REPLACE INTO request_cache (key, created_at, response) VALUES (?,?,?)",
                               (key, at, json.dumps(response)))

    async def prune_cached_responses(self, before: float) -> None:
        await self._db.execute("DELETE FROM request_cache WHERE created_at < ?", (before,))

    async def get_kv(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else row["value"]

    async def set_kv(self, key: str, value: str) -> None:
        await self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
