"""PostgreSQL areas for projects, their versions (with tasks) and queues
(store/catalog_areas.py has the contract)."""

from __future__ import annotations

import json
from typing import Any

from ...statuses import RunStatus
from ..models import Project, ProjectDefaults, Queue, TaskDef, Version
from ..sqlite.rows import columns, from_row, to_row
from ..sqlite.sql import SQL_RUNNING
from . import dequeue_reads, start_reads
from .sql import PgSql, insert_sql, values

_UPSERT_PROJECT = insert_sql("projects", Project, (
    "ON CONFLICT (ref) DO UPDATE SET project_dir = excluded.project_dir, dev = excluded.dev, "
    "left_at = excluded.left_at, updated_at = excluded.updated_at"))
_INSERT_QUEUE = insert_sql("queues", Queue, "ON CONFLICT DO NOTHING")
_TASK_COLS = ["version_id", *columns(TaskDef)]
_INSERT_TASK = (f"INSERT INTO tasks ({', '.join(_TASK_COLS)}) "
                f"VALUES ({', '.join('?' * len(_TASK_COLS))})")


class PgProjects:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def upsert(self, project: Project) -> None:
        self._sql.wrote_catalog = True
        await self._sql.run(_UPSERT_PROJECT, values(project))

    async def update(self, ref: str, **changes: Any) -> bool:
        self._sql.wrote_catalog = True
        return await self._sql.update("projects", Project, "ref", ref, changes)

    async def get(self, ref: str) -> Project | None:
        row = await self._sql.one("SELECT * FROM projects WHERE ref = ?", (ref,))
        return None if row is None else from_row(Project, row)

    async def all(self) -> list[Project]:
        rows = await self._sql.all("SELECT * FROM projects ORDER BY ref")
        return [from_row(Project, r) for r in rows]


class PgVersions:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, version: Version) -> None:
        self._sql.wrote_catalog = True
        await self._sql.run(
            "INSERT INTO versions (id, project_dir, created_at, python, dirs, env, project, "
            "defaults) VALUES (?,?,?,?,?,?,?,?)",
            (version.id, version.project_dir, version.created_at, version.python,
             json.dumps(version.dirs), json.dumps(version.env), version.project,
             json.dumps(version.defaults.to_dict())))
        await self._sql.many(_INSERT_TASK,
                             [[version.id, *to_row(t).values()] for t in version.tasks])

    async def generation(self) -> int:
        """In a dequeue (the turn's): as its first reads read it, or a page of queued runs
        since (runs.py `queued`), with no statement of its own."""
        if self._sql.catalog_seen is None:
            rows = await self._sql.all(dequeue_reads.CATALOG)
            seen = int(rows[0]["n"]) if rows else 0
            if not self._sql.turn:
                return seen
            self._sql.catalog_seen = seen
        return self._sql.catalog_seen

    async def get(self, version_id: str) -> Version | None:
        row = await self._sql.one("SELECT * FROM versions WHERE id = ?", (version_id,))
        if row is None:
            return None
        tasks = await self._sql.all("SELECT * FROM tasks WHERE version_id = ? ORDER BY task_id",
                                    (version_id,))
        return Version(
            id=row["id"], project_dir=row["project_dir"], created_at=row["created_at"],
            python=row["python"], dirs=json.loads(row["dirs"]), env=json.loads(row["env"]),
            tasks=[_task(t) for t in tasks], project=row["project"],
            defaults=ProjectDefaults.from_dict(json.loads(row["defaults"])))

    async def latest(self, project: str | None = None) -> Version | None:
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        row = await self._sql.one(f"SELECT id FROM versions {where} "
                                  "ORDER BY created_at DESC, seq DESC LIMIT 1", params)
        return None if row is None else await self.get(row["id"])

    async def current(self) -> list[Version]:
        rows = await self._sql.all("SELECT DISTINCT project FROM versions")
        found = [await self.latest(r["project"]) for r in rows]
        return [v for v in found if v is not None]


def _task(row: Any) -> TaskDef:
    return from_row(TaskDef, {k: row[k] for k in row.keys() if k != "version_id"})


class PgQueues:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def get(self, project: str, name: str) -> Queue | None:
        # (a trigger that starts its run reads the dequeue's reads with it: start_reads.py)
        row = await self._sql.one(start_reads.QUEUE, (project, name, name))
        return None if row is None else from_row(Queue, row)

    async def insert(self, queue: Queue) -> None:
        await self._sql.run(_INSERT_QUEUE, values(queue))

    async def update(self, project: str, name: str, **changes: Any) -> bool:
        return await self._sql.update("queues", Queue, "project", project, changes,
                                      " AND name = ?", (name,))

    async def all(self, project: str | None = None) -> list[Queue]:
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        rows = await self._sql.all(f"SELECT * FROM queues {where} ORDER BY project, name",
                                   params)
        queues = [from_row(Queue, r) for r in rows]
        # sharded counters written with each commit (counts.py)
        counts = await self._sql.all(
            f"SELECT project, queue, SUM(n) FILTER (WHERE status IN {SQL_RUNNING}) AS running, "
            f"SUM(n) FILTER (WHERE status = '{RunStatus.QUEUED}') AS queued FROM queue_counts "
            "GROUP BY project, queue")
        by_key = {(r["project"], r["queue"]): [int(r["running"] or 0), int(r["queued"] or 0)]
                  for r in counts}
        # in a transaction, the deltas it has not written yet (counts.py); [running, queued]
        for (project, queue, status), n in self._sql.pending.counts.queues().items():
            by_key.setdefault((project, queue), [0, 0])[status == RunStatus.QUEUED] += n
        for q in queues:
            found = by_key.get((q.project, q.name))
            if found is not None:
                q.running, q.queued = found
        return queues

    async def paused(self) -> set[tuple[str, str]]:
        rows = await self._sql.all(dequeue_reads.PAUSED)
        return {(r["project"], r["name"]) for r in rows}

    async def limits(self) -> dict[tuple[str, str], int]:
        rows = await self._sql.all(dequeue_reads.LIMITS)
        return {(r["project"], r["name"]): int(r["concurrency_limit"]) for r in rows}
