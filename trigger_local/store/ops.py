"""The store's operations (`Ops`): every SQL statement of trigger-local lives here.

Contract: every method runs inside the transaction or read it was obtained from (see
`SqliteStore.tx()` / `read()`); `update_run` with an `expected_snapshot` is a compare-and-set
and returns False when the run moved on; `get_*` return None when the record does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from .envvar_ops import EnvVarOps
from .housekeeping_ops import HousekeepingOps
from .models import (
    Attempt,
    Batch,
    Event,
    Run,
    Waitpoint,
)
from .project_ops import ProjectOps
from .rows import columns, encode_changes, from_row, to_row
from .schedule_ops import ScheduleOps

_RUN_COLS = ", ".join(columns(Run))


def _insert_sql(table: str, cls: type) -> str:
    cols = columns(cls)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"


_INSERT = {
    Run: _insert_sql("runs", Run),
    Attempt: _insert_sql("attempts", Attempt),
    Waitpoint: _insert_sql("waitpoints", Waitpoint),
    Batch: _insert_sql("batches", Batch),
}


class _Where:
    """A WHERE clause built from optional filters, with its parameters in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[Any] = []

    def add(self, sql: str, *params: Any) -> None:
        self.parts.append(sql)
        self.params.extend(params)

    def any_of(self, col: str, values: list[str] | None) -> None:
        if values:
            self.add(f"{col} IN ({','.join('?' * len(values))})", *values)

    def tagged(self, table: str, tags: list[str] | None) -> None:
        """Rows carrying any of `tags` (a JSON array column `tags`)."""
        if tags:
            self.add(f"EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE value IN ({','.join('?' * len(tags))}))",
                     *tags)

    def created_between(self, start: float | None, end: float | None) -> None:
        if start is not None:
            self.add("created_at >= ?", start)
        if end is not None:
            self.add("created_at <= ?", end)

    def clause(self) -> str:
        return ("WHERE " + " AND ".join(self.parts)) if self.parts else ""


class Ops(ProjectOps, ScheduleOps, EnvVarOps, HousekeepingOps):
    """The store's operations over one connection. Obtained from `SqliteStore.tx()` (writes,
    atomic as a whole) or `SqliteStore.read()` (reads)."""

    def __init__(self, db: Any) -> None:  # an aiosqlite.Connection or a SyncConnection
        self._db = db

    # -- generic helpers -------------------------------------------------------------------
    async def _one(self, sql: str, params: Any = ()) -> Any:
        async with self._db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: Any = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _newest_first(self, table: str, cols: str, q: _Where, after: str | None, before: str | None,
                            limit: int) -> list[Any]:
        """One cursor page of `table`, newest first: older than the row `after`, or the `limit`
        rows just newer than the row `before` (the page before it)."""
        order = "DESC"
        if after:
            q.add(f"(created_at, id) < (SELECT created_at, id FROM {table} WHERE id = ?)", after)
        elif before:
            q.add(f"(created_at, id) > (SELECT created_at, id FROM {table} WHERE id = ?)", before)
            order = "ASC"
        rows = await self._all(f"SELECT {cols} FROM {table} {q.clause()} ORDER BY created_at {order}, id {order} "
                               "LIMIT ?", (*q.params, limit))
        return rows if order == "DESC" else list(reversed(rows))
    async def _update(self, table: str, cls: type, key: str, key_value: Any,
                      changes: dict[str, Any], extra_where: str = "", extra: tuple = ()) -> bool:
        if not changes:
            return True
        enc = encode_changes(cls, changes)
        sets = ", ".join(f"{k} = ?" for k in enc)
        sql = f"UPDATE {table} SET {sets} WHERE {key} = ?{extra_where}"
        cur = await self._db.execute(sql, (*enc.values(), key_value, *extra))
        return cur.rowcount > 0

    # -- runs ------------------------------------------------------------------------------
    async def insert_run(self, run: Run) -> None:
        await self._db.execute(_INSERT[Run], to_row(run))

    async def insert_runs(self, runs: list[Run]) -> None:
        await self._db.executemany(_INSERT[Run], [to_row(r) for r in runs])

    async def get_run(self, run_id: str) -> Run | None:
        row = await self._one(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,))
        return None if row is None else from_row(Run, row)

    async def get_runs(self, run_ids: list[str]) -> list[Run]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = await self._all(f"SELECT {_RUN_COLS} FROM runs WHERE id IN ({marks})", run_ids)
        by_id = {r["id"]: from_row(Run, r) for r in rows}
        return [by_id[i] for i in run_ids if i in by_id]

    async def update_run(self, run_id: str, expected_snapshot: str | None, **changes: Any) -> bool:
        """Apply `changes`; with `expected_snapshot`, only if the run is still at that snapshot."""
        if expected_snapshot is None:
            return await self._update("runs", Run, "id", run_id, changes)
        return await self._update("runs", Run, "id", run_id, changes, " AND snapshot_id = ?", (expected_snapshot,))

    async def find_run_by_idempotency_key(self, task_id: str, key: str, project: str | None = None) -> Run | None:
        """The newest run of `task_id` with idempotency key `key`; keys are per project (a run
        whose project is not known yet matches any project)."""
        row = await self._one(
            f"SELECT {_RUN_COLS} FROM runs WHERE task_id = ? AND idempotency_key = ? "
            "AND (? IS NULL OR project IS NULL OR project = ?) ORDER BY created_at DESC LIMIT 1",
            (task_id, key, project, project),
        )
        return None if row is None else from_row(Run, row)

    async def list_runs(self, *, statuses: list[str] | None = None, task_ids: list[str] | None = None,
                        tags: list[str] | None = None, queue: str | list[str] | None = None,
                        version_id: str | list[str] | None = None, batch_id: str | list[str] | None = None,
                        parent_run_id: str | None = None, machines: list[str] | None = None,
                        schedule_ids: list[str] | None = None, projects: list[str] | None = None,
                        created_from: float | None = None, created_to: float | None = None,
                        is_test: bool | None = None, search: str | None = None,
                        after: str | None = None, before: str | None = None, limit: int = 25) -> list[Run]:
        """Newest first. `after` = the id of the last run of the previous page. `queue`,
        `version_id` and `batch_id` take one value or a list (any of them)."""
        q = _Where()
        q.any_of("status", statuses)
        q.any_of("task_id", task_ids)
        q.any_of("machine", machines)
        q.any_of("schedule_id", schedule_ids)
        q.any_of("project", projects)
        q.tagged("runs", tags)
        for col, value in (("queue", queue), ("version_id", version_id), ("batch_id", batch_id),
                           ("parent_run_id", parent_run_id)):
            if isinstance(value, list):
                q.any_of(col, value)
            elif value is not None:
                q.add(f"{col} = ?", value)
        q.created_between(created_from, created_to)
        if is_test is not None:
            q.add("is_test = ?", int(is_test))
        if search:
            q.add("(id LIKE ? OR task_id LIKE ? OR tags LIKE ?)", *[f"%{search}%"] * 3)
        rows = await self._newest_first("runs", _RUN_COLS, q, after, before, limit)
        return [from_row(Run, r) for r in rows]

    async def count_runs_by_status(self) -> dict[str, int]:
        rows = await self._all("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    async def runs_with_status(self, statuses: list[str]) -> list[Run]:
        marks = ",".join("?" * len(statuses))
        rows = await self._all(f"SELECT {_RUN_COLS} FROM runs WHERE status IN ({marks})", statuses)
        return [from_row(Run, r) for r in rows]

    async def child_runs(self, parent_run_id: str) -> list[Run]:
        rows = await self._all(f"SELECT {_RUN_COLS} FROM runs WHERE parent_run_id = ? ORDER BY created_at",
                               (parent_run_id,))
        return [from_row(Run, r) for r in rows]

    # -- dispatch queries ------------------------------------------------------------------
    async def running_counts(self) -> dict[tuple[str, str, str | None], int]:
        """Runs holding a slot, per (project, queue, concurrency key)."""
        rows = await self._all(
            "SELECT project, queue, concurrency_key, COUNT(*) AS n FROM runs "
            "WHERE status IN ('DEQUEUED','EXECUTING') GROUP BY project, queue, concurrency_key"
        )
        return {(r["project"], r["queue"], r["concurrency_key"]): r["n"] for r in rows}

    async def queues_with_queued_runs(self) -> list[tuple[str, str]]:
        """(project, queue) of every queue with QUEUED runs."""
        rows = await self._all("SELECT DISTINCT project, queue FROM runs WHERE status = 'QUEUED'")
        return [(r["project"], r["queue"]) for r in rows]

    async def queued_runs(self, project: str, queue: str, limit: int, per_key: int | None = None) -> list[Run]:
        """QUEUED runs of `project`'s `queue`, earliest effective queue time first. With `per_key`,
        at most that many per concurrency key, so one busy key cannot fill the page and starve the rest."""
        if per_key is None:
            rows = await self._all(
                f"SELECT {_RUN_COLS} FROM runs WHERE status = 'QUEUED' AND project = ? AND queue = ? "
                "ORDER BY queued_at, id LIMIT ?", (project, queue, limit))
        else:
            rows = await self._all(
                f"SELECT {_RUN_COLS} FROM (SELECT *, ROW_NUMBER() OVER "
                "(PARTITION BY concurrency_key ORDER BY queued_at, id) AS key_rank "
                "FROM runs WHERE status = 'QUEUED' AND project = ? AND queue = ?) "
                "WHERE key_rank <= ? ORDER BY queued_at, id LIMIT ?",
                (project, queue, per_key, limit),
            )
        return [from_row(Run, r) for r in rows]

    async def next_due_at(self) -> float | None:
        """The earliest moment a timer has something to do, or None."""
        row = await self._one(
            """SELECT MIN(t) AS t FROM (
                 SELECT MIN(delay_until) AS t FROM runs WHERE status = 'DELAYED'
                 UNION ALL SELECT MIN(expires_at) FROM runs WHERE status IN ('QUEUED','DELAYED','PENDING_VERSION') AND expires_at IS NOT NULL
                 UNION ALL SELECT MIN(deadline_at) FROM runs WHERE status IN ('DEQUEUED','EXECUTING') AND deadline_at IS NOT NULL
                 UNION ALL SELECT MIN(complete_after) FROM waitpoints WHERE status = 'WAITING' AND complete_after IS NOT NULL
                 UNION ALL SELECT MIN(timeout_at) FROM waitpoints WHERE status = 'WAITING' AND timeout_at IS NOT NULL
                 UNION ALL SELECT MIN(next_run_at) FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL
                 UNION ALL SELECT MIN(blocked_until) FROM rate_state WHERE blocked_until IS NOT NULL
               )"""
        )
        return None if row is None else row["t"]

    async def due_delayed_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status = 'DELAYED' AND delay_until <= ? ORDER BY delay_until LIMIT ?",
            (now, limit))
        return [from_row(Run, r) for r in rows]

    async def due_expired_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status IN ('QUEUED','DELAYED','PENDING_VERSION') "
            "AND expires_at IS NOT NULL AND expires_at <= ? LIMIT ?", (now, limit))
        return [from_row(Run, r) for r in rows]

    async def due_deadline_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status IN ('DEQUEUED','EXECUTING') "
            "AND deadline_at IS NOT NULL AND deadline_at <= ? LIMIT ?", (now, limit))
        return [from_row(Run, r) for r in rows]

    async def due_waitpoints(self, now: float, limit: int = 500) -> list[Waitpoint]:
        rows = await self._all(
            "SELECT * FROM waitpoints WHERE status = 'WAITING' AND "
            "((complete_after IS NOT NULL AND complete_after <= ?) OR (timeout_at IS NOT NULL AND timeout_at <= ?)) LIMIT ?",
            (now, now, limit))
        return [from_row(Waitpoint, r) for r in rows]

    # -- snapshots and events ----------------------------------------------------------------
    async def insert_snapshot(self, snapshot_id: str, run_id: str, kind: str, status: str,
                              at: float, description: str = "") -> None:
        await self._db.execute(
            "INSERT INTO snapshots (id, run_id, kind, status, at, description) VALUES (?,?,?,?,?,?)",
            (snapshot_id, run_id, kind, status, at, description))

    async def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        rows = await self._all("SELECT * FROM snapshots WHERE run_id = ? ORDER BY at, rowid", (run_id,))
        return [dict(r) for r in rows]

    async def insert_event(self, run_id: str | None, type_: str, at: float, data: dict[str, Any]) -> int:
        cur = await self._db.execute("INSERT INTO events (run_id, type, at, data) VALUES (?,?,?,?)",
                                     (run_id, type_, at, json.dumps(data)))
        return int(cur.lastrowid or 0)

    async def events_after(self, seq: int, limit: int = 500, run_id: str | None = None) -> list[Event]:
        if run_id:
            rows = await self._all("SELECT * FROM events WHERE seq > ? AND run_id = ? ORDER BY seq LIMIT ?",
                                   (seq, run_id, limit))
        else:
            rows = await self._all("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [Event(seq=r["seq"], run_id=r["run_id"], type=r["type"], at=r["at"], data=json.loads(r["data"]))
                for r in rows]

    async def last_event_seq(self) -> int:
        row = await self._one("SELECT MAX(seq) AS s FROM events")
        return int(row["s"] or 0)

    # -- attempts --------------------------------------------------------------------------
    async def insert_attempt(self, attempt: Attempt) -> None:
        await self._db.execute(_INSERT[Attempt], to_row(attempt))

    async def update_attempt(self, attempt_id: str, **changes: Any) -> bool:
        return await self._update("attempts", Attempt, "id", attempt_id, changes)

    async def attempts(self, run_id: str) -> list[Attempt]:
        rows = await self._all("SELECT * FROM attempts WHERE run_id = ? ORDER BY number", (run_id,))
        return [from_row(Attempt, r) for r in rows]

    async def open_attempts(self) -> list[Attempt]:
        rows = await self._all("SELECT * FROM attempts WHERE status = 'EXECUTING'")
        return [from_row(Attempt, r) for r in rows]

    # -- waitpoints ------------------------------------------------------------------------
    async def insert_waitpoint(self, wp: Waitpoint) -> None:
        await self._db.execute(_INSERT[Waitpoint], to_row(wp))

    async def get_waitpoint(self, waitpoint_id: str) -> Waitpoint | None:
        row = await self._one("SELECT * FROM waitpoints WHERE id = ?", (waitpoint_id,))
        return None if row is None else from_row(Waitpoint, row)

    async def update_waitpoint(self, waitpoint_id: str, expected_status: str | None = None, **changes: Any) -> bool:
        if expected_status is None:
            return await self._update("waitpoints", Waitpoint, "id", waitpoint_id, changes)
        return await self._update("waitpoints", Waitpoint, "id", waitpoint_id, changes,
                                  " AND status = ?", (expected_status,))

    async def find_waitpoint_by_key(self, type_: str, key: str, now: float) -> Waitpoint | None:
        row = await self._one(
            "SELECT * FROM waitpoints WHERE type = ? AND idempotency_key = ? "
            "AND (idempotency_expires_at IS NULL OR idempotency_expires_at > ?) ORDER BY created_at DESC LIMIT 1",
            (type_, key, now))
        return None if row is None else from_row(Waitpoint, row)

    async def list_waitpoints(self, *, type_: str, statuses: list[str] | None = None, tags: list[str] | None = None,
                              idempotency_key: str | None = None, created_from: float | None = None,
                              created_to: float | None = None, after: str | None = None,
                              before: str | None = None, limit: int = 25) -> list[Waitpoint]:
        """Newest first; `after`/`before` are the ids at the edge of the neighbouring page."""
        q = _Where()
        q.add("type = ?", type_)
        q.any_of("status", statuses)
        q.tagged("waitpoints", tags)
        if idempotency_key:
            q.add("idempotency_key = ?", idempotency_key)
        q.created_between(created_from, created_to)
        rows = await self._newest_first("waitpoints", "*", q, after, before, limit)
        return [from_row(Waitpoint, r) for r in rows]

    async def block_run(self, run_id: str, waitpoint_ids: list[str], at: float) -> None:
        await self._db.executemany(
            "INSERT OR IGNORE INTO run_waitpoints (run_id, waitpoint_id, created_at) VALUES (?,?,?)",
            [(run_id, w, at) for w in waitpoint_ids])

    async def blocking_waitpoints(self, run_id: str) -> list[Waitpoint]:
        rows = await self._all(
            "SELECT w.* FROM run_waitpoints rw JOIN waitpoints w ON w.id = rw.waitpoint_id WHERE rw.run_id = ?",
            (run_id,))
        return [from_row(Waitpoint, r) for r in rows]

    async def pending_blocker_count(self, run_id: str) -> int:
        row = await self._one(
            "SELECT COUNT(*) AS n FROM run_waitpoints rw JOIN waitpoints w ON w.id = rw.waitpoint_id "
            "WHERE rw.run_id = ? AND w.status = 'WAITING'", (run_id,))
        return int(row["n"])

    async def runs_blocked_by(self, waitpoint_id: str) -> list[str]:
        rows = await self._all("SELECT run_id FROM run_waitpoints WHERE waitpoint_id = ?", (waitpoint_id,))
        return [r["run_id"] for r in rows]

    async def runs_waiting_on(self, waitpoint_ids: list[str]) -> dict[str, list[str]]:
        """Per waitpoint id: the runs that waited on it (from their `run.waiting` events, oldest
        first) and those blocked on it now. Waitpoints nobody waited on are not in the dict."""
        if not waitpoint_ids:
            return {}
        marks = ",".join("?" * len(waitpoint_ids))
        rows = await self._all(
            "SELECT json_extract(data, '$.waitpoint_id') AS wp, run_id FROM events WHERE type = 'run.waiting' "
            f"AND json_extract(data, '$.waitpoint_id') IN ({marks}) ORDER BY seq", tuple(waitpoint_ids))
        rows += await self._all(f"SELECT waitpoint_id AS wp, run_id FROM run_waitpoints WHERE waitpoint_id IN ({marks})",
                                tuple(waitpoint_ids))
        out: dict[str, list[str]] = {}
        for row in rows:
            runs = out.setdefault(row["wp"], [])
            if row["run_id"] and row["run_id"] not in runs:
                runs.append(row["run_id"])
        return out

    async def unblock_run(self, run_id: str) -> None:
        await self._db.execute("DELETE FROM run_waitpoints WHERE run_id = ?", (run_id,))

    # -- batches ---------------------------------------------------------------------------
    async def insert_batch(self, batch: Batch) -> None:
        await self._db.execute(_INSERT[Batch], to_row(batch))

    async def get_batch(self, batch_id: str) -> Batch | None:
        row = await self._one("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return None if row is None else from_row(Batch, row)

    async def find_batch_by_key(self, key: str) -> Batch | None:
        row = await self._one("SELECT * FROM batches WHERE idempotency_key = ? ORDER BY created_at DESC LIMIT 1", (key,))
        return None if row is None else from_row(Batch, row)

    async def update_batch(self, batch_id: str, **changes: Any) -> bool:
        return await self._update("batches", Batch, "id", batch_id, changes)

    async def batch_has_unfinished(self, batch_id: str) -> bool:
        """True while any run of the batch is not final. Asked after every run that ends, so it
        seeks the (batch_id, status) index once per live status instead of counting the batch."""
        row = await self._one(
            "SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_batch_status WHERE batch_id = ? AND status IN "
            "('PENDING_VERSION','DELAYED','QUEUED','DEQUEUED','EXECUTING','WAITING')) AS live", (batch_id,))
        return bool(row["live"])

