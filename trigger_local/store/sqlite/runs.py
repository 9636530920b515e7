"""SQLite areas for runs, their snapshots and attempts, and the timer queries
(store/run_areas.py has the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...ids import attempt_id, attempt_key
from ...statuses import RunStatus, WaitpointStatus
from ..counts import CountJournal
from ..models import Attempt, Run, Schedule, Waitpoint
from ..run_areas import RunningCounts
from .off_loop import OffLoop
from .rows import columns, from_row, to_row
from .run_inserts import Counted, insert_statement, run_row, runs_of_a_shape
from .run_pages import bounded, page_rows, run_filter
from .sql import SQL_FINAL, SQL_HELD_APART, SQL_NOT_STARTED, SQL_RUNNING, Sql

_RUN_COLS = ", ".join(columns(Run))
QUEUED = RunStatus.QUEUED
DELAYED = RunStatus.DELAYED
STORE = "application/store"  # an offloaded payload: its value names a packet (packet_store.py)
# the dispatcher's queries name the partial index that answers them (schema.py, the last
# migration):
# its cost then follows the runs it is about, never the waiting or finished ones, and an index
# that stops matching is an error at once rather than a slow scan (tests/test_store_plans.py)
RUNNING_COUNTS = ("SELECT project, queue, concurrency_key, COUNT(*) AS n FROM runs "
                  f"INDEXED BY runs_holding WHERE status IN {SQL_RUNNING} "
                  "GROUP BY project, queue, concurrency_key")
FIRST_QUEUED_QUEUE = (f"SELECT project, queue FROM runs INDEXED BY runs_ready "
                      f"WHERE status = '{QUEUED}' AND project IS NOT NULL "
                      "ORDER BY project, queue LIMIT 1")
# two seeks, not `(project, queue) > (?, ?)`: SQLite seeks that on `project` alone and then
# reads every run of the project's earlier queues
NEXT_QUEUED_QUEUE = (f"SELECT project, queue FROM runs INDEXED BY runs_ready "
                     f"WHERE status = '{QUEUED}' AND project = ? AND queue > ? "
                     "ORDER BY queue LIMIT 1")
NEXT_QUEUED_PROJECT = (f"SELECT project, queue FROM runs INDEXED BY runs_ready "
                       f"WHERE status = '{QUEUED}' AND project > ? "
                       "ORDER BY project, queue LIMIT 1")
QUEUED_PAGE = (f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_ready WHERE status = '{QUEUED}' "
               "AND project = ? AND queue = ? ORDER BY queued_at, id LIMIT ?")


#: the columns whose change moves a run between counters (counts.py)
_COUNTED = frozenset({"status", "project", "queue"})
_COUNTED_NOW = "SELECT status, project, queue FROM runs WHERE id = ?"


class SqliteRuns:
    def __init__(self, sql: Sql, counts: CountJournal, off_loop: OffLoop | None = None) -> None:
        self._sql = sql
        self._counts = counts  # a status change's counter deltas, written before the COMMIT
        self._off_loop = off_loop  # the reader's lists run there (off_loop.py)

    async def insert(self, run: Run) -> None:
        shape, values = run_row(run)  # only the columns it sets, by position (run_inserts.py)
        self._sql.run(insert_statement(shape), values)
        self._counts.added((run.status, run.project, run.queue))

    async def insert_many(self, runs: Sequence[Run]) -> None:
        for statement, group in runs_of_a_shape(runs):  # one executemany per shape of row
            rows = Counted(group, self._counts)  # a row that fails leaves those before it counted
            try:
                self._sql.many(statement, rows)
            except BaseException:
                rows.take_back_last()
                raise

    async def get(self, run_id: str) -> Run | None:
        row = self._sql.one(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,))
        return None if row is None else from_row(Run, row)

    async def get_many(self, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE id IN ({marks})", run_ids)
        by_id = {r["id"]: from_row(Run, r) for r in rows}
        return [by_id[i] for i in run_ids if i in by_id]

    async def update(self, run_id: str, expected_snapshot: str | None, *,
                     was: tuple[str, str | None, str] | None = None, **changes: Any) -> bool:
        # what the run counted as before: no trigger counts a status change (counts.py). The
        # caller's compare-and-set knows it (`was`); else a point read
        before: Any = None
        if not _COUNTED.isdisjoint(changes):
            before = dict(zip(("status", "project", "queue"), was, strict=True)) \
                if was is not None and expected_snapshot is not None \
                else self._sql.one(_COUNTED_NOW, (run_id,))
        if expected_snapshot is None:
            changed = self._sql.update("runs", Run, "id", run_id, changes)
        else:
            changed = self._sql.update("runs", Run, "id", run_id, changes,
                                       " AND snapshot_id = ?", (expected_snapshot,))
        if changed and before is not None:
            old = (before["status"], before["project"], before["queue"])
            self._counts.moved(old, (changes.get("status", old[0]),
                                     changes.get("project", old[1]), changes.get("queue", old[2])))
        return changed

    async def find_by_idempotency_key(self, task_id: str, key: str,
                                      project: str | None = None) -> Run | None:
        row = self._sql.one(
            f"SELECT {_RUN_COLS} FROM runs WHERE task_id = ? AND idempotency_key = ? "
            "AND (? IS NULL OR project IS NULL OR project = ?) ORDER BY created_at DESC LIMIT 1",
            (task_id, key, project, project))
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
        f = run_filter(statuses=statuses, task_ids=task_ids, tags=tags, queue=queue,
                       version_id=version_id, batch_id=batch_id, parent_run_id=parent_run_id,
                       machines=machines, schedule_ids=schedule_ids, projects=projects,
                       created_from=created_from, created_to=created_to, is_test=is_test,
                       search=search, idempotency_key=idempotency_key)

        def read(sql: Sql) -> list[Run]:
            return [from_row(Run, r) for r in page_rows(sql, f, after, before, limit)]

        if self._off_loop is None or bounded(f):
            return read(self._sql)
        return await self._off_loop.run(read)

    async def count_by_status(self) -> dict[str, int]:
        # counters kept in each writing transaction: a delete by trigger (schema_lists.py,
        # migrations 13 and 20), an insert or a status change just before the COMMIT (counts.py)
        counts = self._counts.statuses()
        for r in self._sql.all("SELECT status, n FROM run_counts"):
            counts[r["status"]] += r["n"]
        return {status: n for status, n in counts.items() if n > 0}

    async def finished_before(self, before: float, limit: int) -> list[Run]:
        rows = self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_finished WHERE completed_at < ? "
            f"AND status IN {SQL_FINAL} ORDER BY completed_at LIMIT ?", (before, limit))
        return [from_row(Run, r) for r in rows]

    async def finished_between(self, after: tuple[float, str] | None, before: float,
                               limit: int) -> list[Run]:
        start = after or (float("-inf"), "")
        # ties in the order of `seq` (the index's last column); a watermark run deleted since
        # starts its instant over (compacting a run twice changes nothing)
        rows = self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_finished WHERE (completed_at, seq) > "
            "(?, IFNULL((SELECT seq FROM runs WHERE id = ?), 0)) AND completed_at < ? "
            f"AND status IN {SQL_FINAL} ORDER BY completed_at, seq LIMIT ?",
            (*start, before, limit))
        return [from_row(Run, r) for r in rows]

    async def compact_history(self, run_ids: Sequence[str], event_types: Sequence[str]) -> None:
        if not run_ids or not event_types:
            return
        marks, types = ",".join("?" * len(run_ids)), ",".join("?" * len(event_types))
        # the current one too: the run row says what it said (run_areas.py)
        self._sql.run(f"DELETE FROM snapshots WHERE run_id IN ({marks})", run_ids)
        self._sql.run(f"DELETE FROM events WHERE run_id IN ({marks}) AND type IN ({types})",
                      (*run_ids, *event_types))

    async def packets_in_use(self, names: Sequence[str]) -> set[str]:
        if not names:
            return set()
        marks = ",".join("?" * len(names))
        rows = self._sql.all(f"SELECT DISTINCT payload FROM runs WHERE payload_type = '{STORE}' "
                             f"AND payload IN ({marks})", names)
        return {r["payload"] for r in rows}

    async def delete_many(self, run_ids: Sequence[str]) -> int:
        if not run_ids:
            return 0
        marks = ",".join("?" * len(run_ids))
        ids = tuple(run_ids)
        self._sql.run(
            f"DELETE FROM waitpoints WHERE id IN (SELECT waitpoint_id FROM runs WHERE id IN "
            f"({marks}) AND waitpoint_id IS NOT NULL) AND status <> '{_WAITING}' AND NOT EXISTS "
            "(SELECT 1 FROM run_waitpoints rw WHERE rw.waitpoint_id = waitpoints.id)", ids)
        self._sql.run("DELETE FROM stream_chunks WHERE stream_id IN (SELECT id FROM streams "
                      f"WHERE run_id IN ({marks}))", ids)
        self._sql.run(f"DELETE FROM attempts WHERE run_seq IN (SELECT seq FROM runs WHERE id IN "
                      f"({marks}))", ids)
        for table in ("snapshots", "events", "logs", "log_usage", "run_waitpoints", "checkpoints",
                      "streams", "run_steps"):
            self._sql.run(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
        return self._sql.run(f"DELETE FROM runs WHERE id IN ({marks})", ids)

    async def with_status(self, statuses: Sequence[str]) -> list[Run]:
        marks = ",".join("?" * len(statuses))
        rows = self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE status IN ({marks})", statuses)
        return [from_row(Run, r) for r in rows]

    async def on_workers(self) -> list[Run]:
        # the running ones (runs_holding), and those a process holds apart from them
        rows = self._sql.all(
            f"SELECT {_RUN_COLS} FROM runs WHERE status IN {SQL_RUNNING} UNION "
            f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_worker WHERE worker_id IS NOT NULL "
            f"AND status IN {SQL_HELD_APART}")
        return [from_row(Run, r) for r in rows]

    async def children(self, parent_run_id: str) -> list[Run]:
        rows = self._sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE parent_run_id = ? "
                             "ORDER BY created_at", (parent_run_id,))
        return [from_row(Run, r) for r in rows]

    async def running_counts(self) -> RunningCounts:
        rows = self._sql.all(RUNNING_COUNTS)
        return {(r["project"], r["queue"], r["concurrency_key"]): r["n"] for r in rows}

    async def queued_queues(self) -> list[tuple[str, str]]:
        # a skip-scan of the ready index: one seek per queue, however many runs each one holds
        out: list[tuple[str, str]] = []
        row = self._sql.one(FIRST_QUEUED_QUEUE)
        while row is not None:
            project = row["project"]
            out.append((project, row["queue"]))
            row = self._sql.one(NEXT_QUEUED_QUEUE, (project, row["queue"])) \
                or self._sql.one(NEXT_QUEUED_PROJECT, (project,))
        return out

    async def queued(self, project: str, queue: str, limit: int,
                     per_key: int | None = None) -> list[Run]:
        if per_key is None:
            rows = self._sql.all(QUEUED_PAGE, (project, queue, limit))
        else:
            rows = self._sql.all(
                f"SELECT {_RUN_COLS} FROM (SELECT *, ROW_NUMBER() OVER "
                "(PARTITION BY concurrency_key ORDER BY queued_at, id) AS key_rank "
                f"FROM runs WHERE status = '{QUEUED}' AND project = ? AND queue = ?) "
                "WHERE key_rank <= ? ORDER BY queued_at, id LIMIT ?",
                (project, queue, per_key, limit))
        return [from_row(Run, r) for r in rows]


class SqliteSnapshots:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def for_run(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._sql.all("SELECT * FROM snapshots WHERE run_id = ? ORDER BY at, rowid",
                             (run_id,))
        return [dict(r) for r in rows]


# attempts are keyed by (run seq, number) (schema_compact.py, migration 18): the run's id comes
# from a join, the attempt's id from both (ids.attempt_id)
_ATTEMPT_COLS = ", ".join(f"a.{c}" for c in columns(Attempt) if c not in ("id", "run_id"))
_ATTEMPTS = (f"SELECT r.id AS run_id, {_ATTEMPT_COLS} FROM attempts a "
             "JOIN runs r ON r.seq = a.run_seq")
_INSERT_ATTEMPT = (f"INSERT INTO attempts (run_seq, {_ATTEMPT_COLS.replace('a.', '')}) "
                   f"SELECT seq, {_ATTEMPT_COLS.replace('a.', ':')} FROM runs WHERE id = :run_id")


def _attempt(row: Any) -> Attempt:
    values = dict(zip(row.keys(), row, strict=True))
    return from_row(Attempt, {"id": attempt_id(values["run_id"], values["number"]), **values})


class SqliteAttempts:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def insert(self, attempt: Attempt) -> None:
        row = to_row(attempt, compact=True)
        del row["id"]  # derived from the run and the number
        self._sql.run(_INSERT_ATTEMPT, row)

    async def update(self, attempt_id: str, **changes: Any) -> bool:
        key = attempt_key(attempt_id)
        if key is None:
            return False
        return self._sql.update("attempts", Attempt, "run_seq",
                                key[0], changes, " AND number = ?", (key[1],),
                                key_sql="(SELECT seq FROM runs WHERE id = ?)")

    async def update_numbered(self, run_id: str, number: int, **changes: Any) -> bool:
        return self._sql.update("attempts", Attempt, "run_seq", run_id, changes,
                                " AND number = ?", (number,),
                                key_sql="(SELECT seq FROM runs WHERE id = ?)")

    async def for_run(self, run_id: str) -> list[Attempt]:
        rows = self._sql.all(f"{_ATTEMPTS} WHERE r.id = ? ORDER BY a.number", (run_id,))
        return [_attempt(r) for r in rows]


_WAITING = WaitpointStatus.WAITING
# one query over every kind of timer, each part an index seek: the dispatcher asks it at start
# and when a resync entry of the engine's schedule comes (engine/due.py), not every round
_NEXT_DUE = f"""SELECT MIN(t) AS t FROM (
    SELECT MIN(delay_until) AS t FROM runs INDEXED BY runs_due_delay WHERE status = '{DELAYED}'
    UNION ALL SELECT MIN(expires_at) FROM runs INDEXED BY runs_due_ttl
        WHERE status IN {SQL_NOT_STARTED} AND expires_at IS NOT NULL
    UNION ALL SELECT MIN(deadline_at) FROM runs INDEXED BY runs_due_deadline
        WHERE status IN {SQL_RUNNING} AND deadline_at IS NOT NULL
    UNION ALL SELECT MIN(complete_after) FROM waitpoints
        WHERE status = '{_WAITING}' AND complete_after IS NOT NULL
    UNION ALL SELECT MIN(timeout_at) FROM waitpoints
        WHERE status = '{_WAITING}' AND timeout_at IS NOT NULL
    UNION ALL SELECT MIN(next_run_at) FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL
    UNION ALL SELECT MIN(blocked_until) FROM rate_state WHERE blocked_until IS NOT NULL
)"""
DUE_DELAYED = (f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_due_delay "
               f"WHERE status = '{DELAYED}' AND delay_until <= ? ORDER BY delay_until LIMIT ?")
DUE_EXPIRED = (f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_due_ttl "
               f"WHERE status IN {SQL_NOT_STARTED} AND expires_at IS NOT NULL "
               "AND expires_at <= ? LIMIT ?")
DUE_DEADLINE = (f"SELECT {_RUN_COLS} FROM runs INDEXED BY runs_due_deadline "
                f"WHERE status IN {SQL_RUNNING} AND deadline_at IS NOT NULL "
                "AND deadline_at <= ? LIMIT ?")
# two index seeks, not one OR (which SQLite answers with a scan of every waitpoint)
DUE_WAITPOINTS = (
    "SELECT * FROM waitpoints WHERE id IN ("
    f"SELECT id FROM (SELECT id FROM waitpoints WHERE status = '{_WAITING}' "
    "AND complete_after IS NOT NULL AND complete_after <= :now LIMIT :limit) "
    f"UNION SELECT id FROM (SELECT id FROM waitpoints WHERE status = '{_WAITING}' "
    "AND timeout_at IS NOT NULL AND timeout_at <= :now LIMIT :limit)) LIMIT :limit")
DUE_SCHEDULES = ("SELECT * FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL "
                 "AND next_run_at <= ? ORDER BY next_run_at LIMIT ?")


class SqliteTimers:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def next_due_at(self) -> float | None:
        row = self._sql.one(_NEXT_DUE)
        return None if row is None else row["t"]

    async def delayed_runs(self, now: float, limit: int = 500) -> list[Run]:
        return [from_row(Run, r) for r in self._sql.all(DUE_DELAYED, (now, limit))]

    async def expired_runs(self, now: float, limit: int = 500) -> list[Run]:
        return [from_row(Run, r) for r in self._sql.all(DUE_EXPIRED, (now, limit))]

    async def deadline_runs(self, now: float, limit: int = 500) -> list[Run]:
        return [from_row(Run, r) for r in self._sql.all(DUE_DEADLINE, (now, limit))]

    async def waitpoints(self, now: float, limit: int = 500) -> list[Waitpoint]:
        return [from_row(Waitpoint, r)
                for r in self._sql.all(DUE_WAITPOINTS, {"now": now, "limit": limit})]

    async def schedules(self, now: float, limit: int = 500) -> list[Schedule]:
        return [from_row(Schedule, r) for r in self._sql.all(DUE_SCHEDULES, (now, limit))]
