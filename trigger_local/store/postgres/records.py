"""PostgreSQL areas for what the daemon records beside the runs: events, log lines, task
processes, checkpoints, request-key answers and the key/value table
(store/run_areas.py and store/daemon_areas.py have the contract)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from ..daemon_areas import first_answer
from ..models import CK_ACTIVE, CK_PENDING, Checkpoint, LogEntry, LogUsage, StoredEvent, Worker
from ..sqlite.records import ADD_USAGE, USAGE, usage_of, usage_params
from ..sqlite.rows import columns, from_row
from .sql import PgSql, values

#: the channel a committed event is announced on (store/postgres/store.py: wake-ups)
EVENTS_CHANNEL = "trigger_local_events"


class PgEvents:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def append(self, run_id: str | None, type_: str, at: float,
                     data: dict[str, Any]) -> None:
        # kept for the commit, which numbers it in commit order (pending.py)
        self._sql.wrote_events = True
        self._sql.pending.event(run_id, type_, at, data)

    async def append_many(self, events: Sequence[tuple[str | None, str, float,
                                                     dict[str, Any]]]) -> None:
        for run_id, type_, at, data in events:
            await self.append(run_id, type_, at, data)

    async def after(self, seq: int, limit: int = 500,
                    run_id: str | None = None) -> list[StoredEvent]:
        if run_id:
            rows = await self._sql.all("SELECT * FROM events WHERE seq > ? AND run_id = ? "
                                       "ORDER BY seq LIMIT ?", (seq, run_id, limit))
        else:
            rows = await self._sql.all("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                       (seq, limit))
        return [StoredEvent(seq=r["seq"], run_id=r["run_id"], type=r["type"], at=r["at"],
                            data=json.loads(r["data"])) for r in rows]

    async def last_seq(self) -> int:
        return int(await self._sql.value("SELECT COALESCE(MAX(seq), 0) FROM events"))


class PgLogs:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def append(self, entries: Sequence[LogEntry]) -> None:
        await self._sql.many(
            "INSERT INTO logs (run_id, attempt, at, level, message, attributes, kind, span_id, "
            "parent_span_id, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(e.run_id, e.attempt, e.at, e.level, e.message, json.dumps(e.attributes), e.kind,
              e.span_id, e.parent_span_id, e.ended_at) for e in entries])

    async def last_id(self) -> int:
        return int(await self._sql.value("SELECT COALESCE(MAX(id), 0) FROM logs"))

    async def usage(self, run_id: str, attempt: int) -> LogUsage | None:
        return usage_of(await self._sql.one(USAGE, (run_id, attempt)))

    async def add_usage(self, run_id: str, attempt: int, total: LogUsage,
                        change: LogUsage) -> None:
        # kept for the commit (pending.py): no round trip of its own
        await self._sql.keep("log_usage", ADD_USAGE, usage_params(run_id, attempt, total, change))

    async def for_run(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogEntry]:
        rows = await self._sql.all(
            "SELECT * FROM logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
            (run_id, after_id, limit))
        return [LogEntry(id=r["id"], run_id=r["run_id"], attempt=r["attempt"], at=r["at"],
                         level=r["level"], message=r["message"],
                         attributes=json.loads(r["attributes"]), kind=r["kind"],
                         span_id=r["span_id"], parent_span_id=r["parent_span_id"],
                         ended_at=r["ended_at"]) for r in rows]


class PgWorkers:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def upsert(self, worker: Worker) -> None:
        await self._sql.run(
            "INSERT INTO workers (id, version_id, token, pid, started_at, executor, daemon_id) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
            "version_id = excluded.version_id, token = excluded.token, pid = excluded.pid, "
            "started_at = excluded.started_at, executor = excluded.executor, "
            "daemon_id = excluded.daemon_id",
            (worker.id, worker.version_id, worker.token, worker.pid, worker.started_at,
             worker.executor, self._sql.owner.daemon_id))

    async def delete(self, worker_id: str) -> None:
        await self._sql.run("DELETE FROM workers WHERE id = ?", (worker_id,))

    async def all(self) -> list[Worker]:
        """This daemon's task processes only: another host's pids mean nothing here."""
        rows = await self._sql.all(f"SELECT {_WORKER_COLS} FROM workers WHERE daemon_id = ?",
                                   (self._sql.owner.daemon_id,))
        return [from_row(Worker, r) for r in rows]


_CK_COLUMNS = frozenset(f.name for f in fields(Checkpoint))
_CK_COLS = ", ".join(columns(Checkpoint))
_WORKER_COLS = ", ".join(columns(Worker))
# a checkpoint's images are files on the host that made it: the daemon that made it restores it
_INSERT_CHECKPOINT = (f"INSERT INTO checkpoints ({_CK_COLS}, daemon_id) "
                      f"VALUES ({', '.join('?' * (len(_CK_COLUMNS) + 1))})")


class PgCheckpoints:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, checkpoint: Checkpoint) -> None:
        await self._sql.run(_INSERT_CHECKPOINT, [*values(checkpoint), self._sql.owner.daemon_id])

    async def update(self, checkpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        unknown = set(changes) - _CK_COLUMNS
        if unknown:
            raise ValueError(f"unknown checkpoint columns {sorted(unknown)}")
        if expected_status is None:
            return await self._sql.update("checkpoints", Checkpoint, "id", checkpoint_id,
                                          changes)
        return await self._sql.update("checkpoints", Checkpoint, "id", checkpoint_id, changes,
                                      " AND status = ?", (expected_status,))

    async def delete(self, checkpoint_id: str, expected_status: str) -> bool:
        return await self._sql.run("DELETE FROM checkpoints WHERE id = ? AND status = ?",
                                   (checkpoint_id, expected_status)) > 0

    async def get(self, checkpoint_id: str) -> Checkpoint | None:
        row = await self._sql.one(f"SELECT {_CK_COLS} FROM checkpoints WHERE id = ?",
                                  (checkpoint_id,))
        return None if row is None else from_row(Checkpoint, row)

    async def for_run(self, run_id: str) -> list[Checkpoint]:
        rows = await self._sql.all(
            f"SELECT {_CK_COLS} FROM checkpoints WHERE run_id = ? ORDER BY created_at, id",
            (run_id,))
        return [from_row(Checkpoint, r) for r in rows]

    async def active(self) -> list[Checkpoint]:
        return await self._with_status(CK_ACTIVE)

    async def pending(self) -> list[Checkpoint]:
        return await self._with_status(CK_PENDING)

    async def _with_status(self, status: str) -> list[Checkpoint]:
        rows = await self._sql.all(
            f"SELECT {_CK_COLS} FROM checkpoints WHERE status = ? AND daemon_id = ? "
            "ORDER BY created_at, id", (status, self._sql.owner.daemon_id))
        return [from_row(Checkpoint, r) for r in rows]


class PgRequests:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def get(self, key: str, since: float) -> dict[str, Any] | None:
        row = await self._sql.one(
            "SELECT response FROM request_cache WHERE key = ? AND created_at >= ?", (key, since))
        if row is None:
            return None
        answer: dict[str, Any] = json.loads(row["response"])
        return answer

    async def first(self, keys: Sequence[str],
                    since: float) -> tuple[str, dict[str, Any]] | None:
        rows = await self._sql.all("SELECT key, response FROM request_cache "
                                   "WHERE key = ANY(?::text[]) AND created_at >= ?",
                                   (list(keys), since))
        return first_answer(keys, {str(r["key"]): str(r["response"]) for r in rows})

    async def put(self, key: str, at: float, answer: dict[str, Any]) -> None:
        # kept for the commit (pending.py): nobody waits for its answer (a trigger's request
        # key, both SDKs send one: its round trip was one of a trigger's)
        await self._sql.keep(
            "request_cache", "INSERT INTO request_cache (key, created_at, response) VALUES (?,?,?) "
            "ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at, "
            "response = excluded.response", (key, at, json.dumps(answer)))

    async def prune(self, before: float, limit: int) -> int:
        return await self._sql.run(
            "DELETE FROM request_cache WHERE key IN (SELECT key FROM request_cache "
            "WHERE created_at < ? ORDER BY created_at LIMIT ?)", (before, limit))


class PgKv:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def get(self, key: str) -> str | None:
        row = await self._sql.one("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set(self, key: str, value: str) -> None:
        await self._sql.run("INSERT INTO kv (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
