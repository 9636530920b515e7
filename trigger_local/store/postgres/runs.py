"""PostgreSQL areas for runs, their snapshots and attempts, and the timer queries
(store/run_areas.py has the contract; store/sqlite/runs.py is the same in SQLite's words)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from ...statuses import RunStatus, WaitpointStatus
from ..models import Attempt, Run, Schedule, Waitpoint
from ..run_areas import RunningCounts
from ..sqlite.rows import columns, encode_changes, from_row
from ..sqlite.sql import SQL_NOT_STARTED, SQL_RUNNING, Where
from . import dequeue_reads, history
from .counts import COUNTED
from .pending import NEW_RUN, Fold
from .sql import PgSql, created_between, insert_sql, tagged, values

_RUN_COLS = ", ".join(columns(Run))
_INSERT_RUN = insert_sql("runs", Run)
_INSERT_ATTEMPT = insert_sql("attempts", Attempt)
QUEUED = RunStatus.QUEUED
DELAYED = RunStatus.DELAYED
DEQUEUED = RunStatus.DEQUEUED


def _into_insert(snapshot: str, changes: dict[str, Any], insert: str, inserted: Sequence[Any]
                 ) -> tuple[str, list[Any]] | None:
    """A kept INSERT (its statement and values) with a locked run's UPDATE applied
    (pending.py `Fold`): its compare-and-set on `snapshot` holds there, as it would on the
    row. A column the INSERT leaves to its default (`daemon_id`) is added to it."""
    cols = insert[insert.index("(") + 1:insert.index(")")].split(", ")
    if inserted[cols.index("snapshot_id")] != snapshot:
        return None
    out = list(inserted)
    for name, value in encode_changes(Run, changes).items():
        if name in cols:
            out[cols.index(name)] = value
        else:
            cols.append(name)
            out.append(value)
    return (f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            out)


class PgRuns:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, run: Run) -> None:
        # kept for the commit (pending.py): nobody waits for its answer. Its trigger writes
        # the tags table (schema_lists.py): run_tags holds "run" in its name, so a statement
        # naming it sends it first. It is counted with the commit (counts.py)
        self._sql.note_timers_of(run)
        self._sql.pending.counts.added((run.status, run.project, run.queue))
        ahead = self._sql.ahead_valid()
        if ahead is not None:  # a dequeue's reads ahead count it in (start_reads.py)
            ahead.inserted(run)
        await self._sql.keep(NEW_RUN, _INSERT_RUN, values(run))

    async def insert_many(self, runs: Sequence[Run]) -> None:
        for run in runs:
            self._sql.note_timers_of(run)
        await self._sql.many(_INSERT_RUN, [values(r) for r in runs])
        for run in runs:
            self._sql.pending.counts.added((run.status, run.project, run.queue))

    async def get(self, run_id: str) -> Run | None:
        row = await self._sql.one(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,))
        return None if row is None else from_row(Run, row)

    async def get_many(self, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []
        rows = await self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE id = ANY(?::text[])",
                                   (list(run_ids),))
        by_id = {r["id"]: from_row(Run, r) for r in rows}
        return [by_id[i] for i in run_ids if i in by_id]

    async def update(self, run_id: str, expected_snapshot: str | None, *,
                     was: tuple[str, str | None, str] | None = None, **changes: Any) -> bool:
        # `was` is not needed here: the status counts are kept by the database
        # the daemon that takes a run off its queue or gives it a process holds it (dequeue
        # and takeover read this); a run that loses its process is held by none
        if changes.get("worker_id") or changes.get("status") == DEQUEUED:
            changes["daemon_id"] = self._sql.owner.daemon_id
        elif "worker_id" in changes:
            changes["daemon_id"] = None
        guard, extra = ("", ()) if expected_snapshot is None else \
            (" AND snapshot_id = ?", (expected_snapshot,))
        locked = self._sql.locked.get(run_id)
        if locked is not None and changes and expected_snapshot == locked[0]:
            return await self._update_locked(run_id, locked, changes, guard, extra)
        if COUNTED.isdisjoint(changes):
            return await self._sql.update("runs", Run, "id", run_id, changes, guard, extra)
        # a move between counters: where the run counted before comes back with the UPDATE,
        # and the commit counts it (counts.py; no trigger does since migration 9)
        old = await self._sql.update_from("runs", Run, run_id, changes, ("status", "project",
                                          "queue"), guard, extra)
        if old is not None:
            place = (old["status"], old["project"], old["queue"])
            self._sql.pending.counts.moved(place, (changes.get("status", place[0]),
                                                   changes.get("project", place[1]),
                                                   changes.get("queue", place[2])))
        return old is not None

    async def _update_locked(self, run_id: str, locked: tuple[str, str, str | None, str],
                             changes: dict[str, Any], guard: str, extra: Sequence[Any]) -> bool:
        """A compare-and-set of a run this transaction (one taking the dequeues' turn) locked
        at the snapshot it expects: nobody else can change the row before the commit, so it
        succeeds, and its UPDATE is kept for the commit's round trip (pending.py) instead of
        costing one of its own (a dequeue's move to DEQUEUED)."""
        snapshot, status, project, queue = locked
        new_status: str = changes.get("status", status)
        new_project: str | None = changes.get("project", project)
        new_queue: str = changes.get("queue", queue)
        self._sql.pending.counts.moved((status, project, queue),
                                       (new_status, new_project, new_queue))
        self._sql.locked[run_id] = (changes.get("snapshot_id", snapshot), new_status,
                                    new_project, new_queue)
        await self._sql.keep("runs", *self._sql.update_sql("runs", Run, "id", run_id, changes,
                                                           guard, extra),
                             Fold(run_id, partial(_into_insert, snapshot, changes)))
        return True

    async def find_by_idempotency_key(self, task_id: str, key: str,
                                      project: str | None = None) -> Run | None:
        row = await self._sql.one(
            f"SELECT {_RUN_COLS} FROM runs WHERE task_id = ? AND idempotency_key = ? "
            "AND (?::text IS NULL OR project IS NULL OR project = ?) "
            "ORDER BY created_at DESC LIMIT 1", (task_id, key, project, project))
        return None if row is None else from_row(Run, row)

    async def page(self, *, statuses: Sequence[str] | None = None,
                   task_ids: Sequence[str] | None = None, tags: Sequence[str] | None = None,
                   queue: str | list[str] | None = None,
                   version_id: str | list[str] | None = None,
                   batch_id: str | list[str] | None = None, parent_run_id: str | None = None,
                   machines: Sequence[str] | None = None,
                   schedule_ids: Sequence[str] | None = None,
                   projects: Sequence[str] | None = None, created_from: float | None = None,
                   created_to: float | None = None, is_test: bool | None = None,
                   search: str | None = None, idempotency_key: str | None = None,
                   after: str | None = None, before: str | None = None,
                   limit: int = 25) -> list[Run]:
        q = Where()
        if idempotency_key is not None:
            q.add("idempotency_key = ?", idempotency_key)
        q.any_of("status", statuses)
        q.any_of("task_id", task_ids)
        q.any_of("machine", machines)
        q.any_of("schedule_id", schedule_ids)
        q.any_of("project", projects)
        tagged(q, "runs", tags)
        q.one_or_any("queue", queue)
        q.one_or_any("version_id", version_id)
        q.one_or_any("batch_id", batch_id)
        q.one_or_any("parent_run_id", parent_run_id)
        created_between(q, created_from, created_to)
        if is_test is not None:
            q.add("is_test = ?", int(is_test))
        if search:  # ILIKE: SQLite's LIKE ignores the case of ASCII letters
            q.add("(id ILIKE ? OR task_id ILIKE ? OR tags ILIKE ?)", *[f"%{search}%"] * 3)
        rows = await self._sql.newest_first("runs", _RUN_COLS, q, after, before, limit)
        return [from_row(Run, r) for r in rows]

    async def finished_before(self, before: float, limit: int) -> list[Run]:
        return await history.finished_before(self._sql, before, limit)

    async def finished_between(self, after: tuple[float, str] | None, before: float,
                               limit: int) -> list[Run]:
        return await history.finished_between(self._sql, after, before, limit)

    async def packets_in_use(self, names: Sequence[str]) -> set[str]:
        return await history.packets_in_use(self._sql, names)

    async def compact_history(self, run_ids: Sequence[str], event_types: Sequence[str]) -> None:
        await history.compact_history(self._sql, run_ids, event_types)

    async def delete_many(self, run_ids: Sequence[str]) -> int:
        return await history.delete_many(self._sql, run_ids)

    async def on_workers(self) -> list[Run]:
        return await history.on_workers(self._sql)

    async def count_by_status(self) -> dict[str, int]:
        # sharded counters, written with each commit (counts.py; a deletion by trigger), and
        # in a transaction the deltas it has not written yet — taken after the SELECT, which
        # may have sent (and so written and forgotten) them first
        rows = await self._sql.all("SELECT status, SUM(n) AS n FROM run_counts GROUP BY status")
        counts = self._sql.pending.counts.statuses()
        for r in rows:
            counts[r["status"]] += int(r["n"])
        return {status: n for status, n in counts.items() if n > 0}

    async def with_status(self, statuses: Sequence[str]) -> list[Run]:
        """Those of this daemon, of none, or of a daemon whose lease ran out: a starting daemon
        reconciles these, and must leave alone what a live daemon holds."""
        mine, params = self._sql.owner.held_here_or_orphaned("runs")
        rows = await self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE status = ANY(?::text[]) "
                                   f"AND {mine}", (list(statuses), *params))
        return [from_row(Run, r) for r in rows]

    async def children(self, parent_run_id: str) -> list[Run]:
        rows = await self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE parent_run_id = ? "
                                   "ORDER BY created_at", (parent_run_id,))
        return [from_row(Run, r) for r in rows]

    async def running_counts(self) -> RunningCounts:
        rows = await self._sql.all(dequeue_reads.RUNNING)
        return {(r["project"], r["queue"], r["concurrency_key"]): int(r["n"]) for r in rows}

    async def queued_queues(self) -> list[tuple[str, str]]:
        rows = await self._sql.all(dequeue_reads.QUEUED_QUEUES)
        return [(r["project"], r["queue"]) for r in rows]

    async def queued(self, project: str, queue: str, limit: int,
                     per_key: int | None = None) -> list[Run]:
        # a held run (its wait completed, its process still waiting) goes only to the daemon
        # that holds the process, unless that daemon's lease ran out (it is restarted there)
        ahead = self._sql.ahead_valid() if self._sql.turn else None
        found = None if ahead is None else ahead.page(project, queue, limit, per_key)
        if found is not None:  # only runs this transaction inserted: seen by no other
            self._sql.locked.update((r.id, (r.snapshot_id, r.status, r.project, r.queue))
                                    for r in found)
            return found
        mine, owner = self._sql.owner.held_here_or_orphaned("runs")
        held = f"(runs.worker_id IS NULL OR {mine})"
        ready = f"status = '{QUEUED}' AND project = ? AND queue = ? AND {held}"
        if per_key is None:
            page = f"SELECT id FROM runs WHERE {ready} ORDER BY queued_at, id LIMIT ?"
            params: tuple[Any, ...] = (project, queue, *owner, limit)
        else:
            page = ("SELECT id FROM (SELECT id, queued_at, ROW_NUMBER() OVER "
                    "(PARTITION BY concurrency_key ORDER BY queued_at, id) AS key_rank "
                    f"FROM runs WHERE {ready}) AS ranked WHERE key_rank <= ? "
                    "ORDER BY queued_at, id LIMIT ?")
            params = (project, queue, *owner, per_key, limit)
        # in a transaction (the dequeue) the rows are taken for it: a row another transaction
        # is changing (a cancel) is skipped rather than waited for, and is not taken twice
        lock = " FOR UPDATE SKIP LOCKED" if self._sql.writes else ""
        # a dequeue's page (read committed: a snapshot later than its first reads') reads the
        # catalog's generation too, in its snapshot: a run it finds triggered after a version
        # registered since the first reads is not taken on the version before (dequeue.py)
        catalog = f", ({dequeue_reads.CATALOG}) AS catalog_n" if self._sql.exclusive else ""
        rows = await self._sql.all(
            f"SELECT {_RUN_COLS}{catalog} FROM runs WHERE id IN ({page}) AND status = "
            f"'{QUEUED}' ORDER BY queued_at, id{lock}", params)
        if catalog and rows:
            self._sql.catalog_seen = max(self._sql.catalog_seen or 0, rows[0]["catalog_n"])
            names = list(rows[0].keys())[:-1]  # (the runs' columns: zip stops at catalog_n)
            rows = [dict(zip(names, r, strict=False)) for r in rows]
        if self._sql.writes and self._sql.turn:
            # each row as it is now (read committed; serializable: else FOR UPDATE refuses the
            # transaction), locked until the commit (`update`)
            self._sql.locked.update((r["id"], (r["snapshot_id"], r["status"], r["project"],
                                               r["queue"])) for r in rows)
        return [from_row(Run, r) for r in rows]


class PgSnapshots:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def for_run(self, run_id: str) -> list[dict[str, Any]]:
        rows = await self._sql.all("SELECT id, run_id, kind, status, at, description "
                                   "FROM snapshots WHERE run_id = ? ORDER BY at, seq", (run_id,))
        return [dict(r) for r in rows]


class PgAttempts:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, attempt: Attempt) -> None:
        # kept for the commit (pending.py): nobody waits for its answer
        await self._sql.keep("attempts", _INSERT_ATTEMPT, values(attempt))

    async def update(self, attempt_id: str, **changes: Any) -> bool:
        return await self._sql.update("attempts", Attempt, "id", attempt_id, changes)

    async def update_numbered(self, run_id: str, number: int, **changes: Any) -> bool:
        return await self._sql.update("attempts", Attempt, "run_id", run_id, changes,
                                      " AND number = ?", (number,))

    async def for_run(self, run_id: str) -> list[Attempt]:
        rows = await self._sql.all("SELECT * FROM attempts WHERE run_id = ? ORDER BY number",
                                   (run_id,))
        return [from_row(Attempt, r) for r in rows]


_WAITING = WaitpointStatus.WAITING
# one query over every kind of timer: the dispatcher asks it before each sleep
_NEXT_DUE = f"""SELECT MIN(t) AS t FROM (
    SELECT MIN(delay_until) AS t FROM runs WHERE status = '{DELAYED}'
    UNION ALL SELECT MIN(expires_at) FROM runs
        WHERE status IN {SQL_NOT_STARTED} AND expires_at IS NOT NULL
    UNION ALL SELECT MIN(deadline_at) FROM runs
        WHERE status IN {SQL_RUNNING} AND deadline_at IS NOT NULL
    UNION ALL SELECT MIN(complete_after) FROM waitpoints
        WHERE status = '{_WAITING}' AND complete_after IS NOT NULL
    UNION ALL SELECT MIN(timeout_at) FROM waitpoints
        WHERE status = '{_WAITING}' AND timeout_at IS NOT NULL
    UNION ALL SELECT MIN(next_run_at) FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL
    UNION ALL SELECT MIN(blocked_until) FROM rate_state WHERE blocked_until IS NOT NULL
) AS due"""


class PgTimers:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def next_due_at(self) -> float | None:
        value = await self._sql.value(_NEXT_DUE)
        return None if value is None else float(value)

    async def delayed_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status = '{DELAYED}' AND delay_until <= ? "
            "ORDER BY delay_until LIMIT ?", (now, limit))
        return [from_row(Run, r) for r in rows]

    async def expired_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status IN {SQL_NOT_STARTED} "
            "AND expires_at IS NOT NULL AND expires_at <= ? LIMIT ?", (now, limit))
        return [from_row(Run, r) for r in rows]

    async def deadline_runs(self, now: float, limit: int = 500) -> list[Run]:
        rows = await self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status IN {SQL_RUNNING} "
            "AND deadline_at IS NOT NULL AND deadline_at <= ? LIMIT ?", (now, limit))
        return [from_row(Run, r) for r in rows]

    async def waitpoints(self, now: float, limit: int = 500) -> list[Waitpoint]:
        rows = await self._sql.all(
            f"SELECT * FROM waitpoints WHERE status = '{_WAITING}' AND "
            "((complete_after IS NOT NULL AND complete_after <= ?) "
            "OR (timeout_at IS NOT NULL AND timeout_at <= ?)) LIMIT ?", (now, now, limit))
        return [from_row(Waitpoint, r) for r in rows]

    async def schedules(self, now: float, limit: int = 500) -> list[Schedule]:
        rows = await self._sql.all(
            "SELECT * FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL "
            "AND next_run_at <= ? ORDER BY next_run_at LIMIT ?", (now, limit))
        return [from_row(Schedule, r) for r in rows]
