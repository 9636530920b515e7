"""SQLite areas for what the daemon records beside the runs: events, log lines, task
processes, checkpoints, request-key answers and the key/value table
(store/run_areas.py and store/daemon_areas.py have the contract)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from ..daemon_areas import first_answer
from ..models import CK_ACTIVE, CK_PENDING, Checkpoint, LogEntry, LogUsage, StoredEvent, Worker
from .rows import from_row, insert_sql, to_row
from .sql import Sql

_INSERT_EVENT = "INSERT INTO events (run_id, type, at, data) VALUES (?,?,?,?)"
#: an attempt's log count: its first as it is, later ones added (store/run_areas.py); the
#: same text on PostgreSQL (`marked` is 0 or 1: `|` keeps it once set)
ADD_USAGE = (
    "INSERT INTO log_usage (run_id, attempt, stored_lines, stored_bytes, dropped_lines, "
    "dropped_bytes, marked) VALUES (?,?,?,?,?,?,?) ON CONFLICT (run_id, attempt) DO UPDATE SET "
    "stored_lines = log_usage.stored_lines + ?, stored_bytes = log_usage.stored_bytes + ?, "
    "dropped_lines = log_usage.dropped_lines + ?, dropped_bytes = log_usage.dropped_bytes + ?, "
    "marked = log_usage.marked | excluded.marked")
USAGE = ("SELECT stored_lines, stored_bytes, dropped_lines, dropped_bytes, marked FROM log_usage "
         "WHERE run_id = ? AND attempt = ?")


def usage_params(run_id: str, attempt: int, total: LogUsage,
                 change: LogUsage) -> tuple[object, ...]:
    return (run_id, attempt, total.stored_lines, total.stored_bytes, total.dropped_lines,
            total.dropped_bytes, int(total.marked or change.marked), change.stored_lines,
            change.stored_bytes, change.dropped_lines, change.dropped_bytes)


def usage_of(row: Any) -> LogUsage | None:
    return None if row is None else LogUsage(row[0], row[1], row[2], row[3], bool(row[4]))


class SqliteEvents:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def append(self, run_id: str | None, type_: str, at: float,
                     data: dict[str, Any]) -> None:
        self._sql.insert(_INSERT_EVENT, (run_id, type_, at, json.dumps(data)))

    async def append_many(self, events: Sequence[tuple[str | None, str, float,
                                                     dict[str, Any]]]) -> None:
        self._sql.many(_INSERT_EVENT, [(run_id, type_, at, json.dumps(data))
                                       for run_id, type_, at, data in events])

    async def after(self, seq: int, limit: int = 500,
                    run_id: str | None = None) -> list[StoredEvent]:
        if run_id:
            rows = self._sql.all("SELECT * FROM events WHERE seq > ? AND run_id = ? "
                                 "ORDER BY seq LIMIT ?", (seq, run_id, limit))
        else:
            rows = self._sql.all("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                 (seq, limit))
        return [StoredEvent(seq=r["seq"], run_id=r["run_id"], type=r["type"], at=r["at"],
                      data=json.loads(r["data"])) for r in rows]

    async def last_seq(self) -> int:
        row = self._sql.one("SELECT MAX(seq) AS s FROM events")
        return int(row["s"] or 0) if row is not None else 0


class SqliteLogs:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def append(self, entries: Sequence[LogEntry]) -> None:
        self._sql.many(
            "INSERT INTO logs (run_id, attempt, at, level, message, attributes, kind, span_id, "
            "parent_span_id, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(e.run_id, e.attempt, e.at, e.level, e.message, json.dumps(e.attributes), e.kind,
              e.span_id, e.parent_span_id, e.ended_at) for e in entries])

    async def last_id(self) -> int:
        row = self._sql.one("SELECT MAX(id) AS m FROM logs")
        return int(row["m"] or 0) if row is not None else 0

    async def usage(self, run_id: str, attempt: int) -> LogUsage | None:
        return usage_of(self._sql.one(USAGE, (run_id, attempt)))

    async def add_usage(self, run_id: str, attempt: int, total: LogUsage,
                        change: LogUsage) -> None:
        self._sql.run(ADD_USAGE, usage_params(run_id, attempt, total, change))

    async def for_run(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogEntry]:
        rows = self._sql.all("SELECT * FROM logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                             (run_id, after_id, limit))
        return [LogEntry(id=r["id"], run_id=r["run_id"], attempt=r["attempt"], at=r["at"],
                         level=r["level"], message=r["message"],
                         attributes=json.loads(r["attributes"]), kind=r["kind"],
                         span_id=r["span_id"], parent_span_id=r["parent_span_id"],
                         ended_at=r["ended_at"]) for r in rows]


class SqliteWorkers:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def upsert(self, worker: Worker) -> None:
        self._sql.run(
            "INSERT OR REPLACE INTO workers (id, version_id, token, pid, started_at, executor) "
            "VALUES (?,?,?,?,?,?)", (worker.id, worker.version_id, worker.token, worker.pid,
                                     worker.started_at, worker.executor))

    async def delete(self, worker_id: str) -> None:
        self._sql.run("DELETE FROM workers WHERE id = ?", (worker_id,))

    async def all(self) -> list[Worker]:
        return [from_row(Worker, r) for r in self._sql.all("SELECT * FROM workers")]


_CK_COLUMNS = frozenset(f.name for f in fields(Checkpoint))
_INSERT_CHECKPOINT = insert_sql("checkpoints", Checkpoint)


class SqliteCheckpoints:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def insert(self, checkpoint: Checkpoint) -> None:
        self._sql.run(_INSERT_CHECKPOINT, to_row(checkpoint))

    async def update(self, checkpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        unknown = set(changes) - _CK_COLUMNS
        if unknown:
            raise ValueError(f"unknown checkpoint columns {sorted(unknown)}")
        if expected_status is None:
            return self._sql.update("checkpoints", Checkpoint, "id", checkpoint_id, changes)
        return self._sql.update("checkpoints", Checkpoint, "id", checkpoint_id, changes,
                                " AND status = ?", (expected_status,))

    async def delete(self, checkpoint_id: str, expected_status: str) -> bool:
        return self._sql.run("DELETE FROM checkpoints WHERE id = ? AND status = ?",
                             (checkpoint_id, expected_status)) > 0

    async def get(self, checkpoint_id: str) -> Checkpoint | None:
        row = self._sql.one("SELECT * FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return None if row is None else from_row(Checkpoint, row)

    async def for_run(self, run_id: str) -> list[Checkpoint]:
        rows = self._sql.all("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY created_at, id",
                             (run_id,))
        return [from_row(Checkpoint, r) for r in rows]

    async def active(self) -> list[Checkpoint]:
        return self._with_status(CK_ACTIVE)

    async def pending(self) -> list[Checkpoint]:
        return self._with_status(CK_PENDING)

    def _with_status(self, status: str) -> list[Checkpoint]:
        rows = self._sql.all("SELECT * FROM checkpoints WHERE status = ? ORDER BY created_at, id",
                             (status,))
        return [from_row(Checkpoint, r) for r in rows]


class SqliteRequests:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def get(self, key: str, since: float) -> dict[str, Any] | None:
        row = self._sql.one("SELECT response FROM request_cache WHERE key = ? AND created_at >= ?",
                            (key, since))
        if row is None:
            return None
        answer: dict[str, Any] = json.loads(row["response"])
        return answer

    async def first(self, keys: Sequence[str],
                    since: float) -> tuple[str, dict[str, Any]] | None:
        marks = ", ".join("?" * len(keys))
        rows = self._sql.all(f"SELECT key, response FROM request_cache WHERE key IN ({marks}) "
                             "AND created_at >= ?", (*keys, since))
        return first_answer(keys, {str(r["key"]): str(r["response"]) for r in rows})

    async def put(self, key: str, at: float, answer: dict[str, Any]) -> None:
        self._sql.run("INSERT OR REPLACE INTO request_cache (key, created_at, response) "
                      "VALUES (?,?,?)", (key, at, json.dumps(answer)))

    async def prune(self, before: float, limit: int) -> int:
        return self._sql.run(
            "DELETE FROM request_cache WHERE key IN (SELECT key FROM request_cache "
            "WHERE created_at < ? ORDER BY created_at LIMIT ?)", (before, limit))


class SqliteKv:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def get(self, key: str) -> str | None:
        row = self._sql.one("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set(self, key: str, value: str) -> None:
        self._sql.run("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
