"""SQLite areas for projects, their versions (with tasks) and queues
(store/catalog_areas.py has the contract)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ...statuses import RunStatus
from ..counts import CountJournal
from ..models import Project, ProjectDefaults, Queue, TaskDef, Version
from .memo import CatalogMemo
from .rows import columns, from_row, insert_sql, to_row
from .sql import SQL_RUNNING, Sql

_UPSERT_PROJECT = (insert_sql("projects", Project) + " ON CONFLICT(ref) DO UPDATE SET "
                   "project_dir = excluded.project_dir, dev = excluded.dev, "
                   "left_at = excluded.left_at, updated_at = excluded.updated_at")
_INSERT_QUEUE = insert_sql("queues", Queue, "INSERT OR IGNORE")
_TASK_COLS = ["version_id", *columns(TaskDef)]
_INSERT_TASK = (f"INSERT INTO tasks ({', '.join(_TASK_COLS)}) "
                f"VALUES ({', '.join(':' + c for c in _TASK_COLS)})")


class SqliteProjects:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def upsert(self, project: Project) -> None:
        self._sql.run(_UPSERT_PROJECT, to_row(project))

    async def update(self, ref: str, **changes: Any) -> bool:
        return self._sql.update("projects", Project, "ref", ref, changes)

    async def get(self, ref: str) -> Project | None:
        row = self._sql.one("SELECT * FROM projects WHERE ref = ?", (ref,))
        return None if row is None else from_row(Project, row)

    async def all(self) -> list[Project]:
        return [from_row(Project, r) for r in self._sql.all("SELECT * FROM projects ORDER BY ref")]


class SqliteVersions:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def insert(self, version: Version) -> None:
        self._sql.run(
            "INSERT INTO versions (id, project_dir, created_at, python, dirs, env, project, "
            "defaults) VALUES (?,?,?,?,?,?,?,?)",
            (version.id, version.project_dir, version.created_at, version.python,
             json.dumps(version.dirs), json.dumps(version.env), version.project,
             json.dumps(version.defaults.to_dict())))
        rows = [to_row(t) | {"version_id": version.id} for t in version.tasks]
        if rows:
            self._sql.many(_INSERT_TASK, rows)

    async def generation(self) -> int:
        return 0  # one daemon's catalog: its cache is never behind

    async def get(self, version_id: str) -> Version | None:
        row = self._sql.one("SELECT * FROM versions WHERE id = ?", (version_id,))
        if row is None:
            return None
        tasks = self._sql.all("SELECT * FROM tasks WHERE version_id = ? ORDER BY task_id",
                              (version_id,))
        return Version(
            id=row["id"], project_dir=row["project_dir"], created_at=row["created_at"],
            python=row["python"], dirs=json.loads(row["dirs"]), env=json.loads(row["env"]),
            tasks=[_task(t) for t in tasks], project=row["project"],
            defaults=ProjectDefaults.from_dict(json.loads(row["defaults"])))

    async def latest(self, project: str | None = None) -> Version | None:
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        row = self._sql.one(f"SELECT id FROM versions {where} "
                            "ORDER BY created_at DESC, rowid DESC LIMIT 1", params)
        return None if row is None else await self.get(row["id"])

    async def current(self) -> list[Version]:
        rows = self._sql.all("SELECT DISTINCT project FROM versions")
        found = [await self.latest(r["project"]) for r in rows]
        return [v for v in found if v is not None]


def _task(row: sqlite3.Row) -> TaskDef:
    return from_row(TaskDef, {k: row[k] for k in row.keys() if k != "version_id"})


class SqliteQueues:
    def __init__(self, sql: Sql, counts: CountJournal, memo: CatalogMemo) -> None:
        self._sql = sql
        self._counts = counts  # status changes not yet written to queue_counts (counts.py)
        self._memo = memo  # on the writer, what dequeues read every time (memo.py)

    async def get(self, project: str, name: str) -> Queue | None:
        found = self._memo.get(("queue", project, name), lambda: self._sql.one(
            "SELECT * FROM queues WHERE (project = ? AND name = ?) OR id = ?",
            (project, name, name)))
        return None if found is None else from_row(Queue, found)

    async def insert(self, queue: Queue) -> None:
        self._memo.changed()
        self._sql.run(_INSERT_QUEUE, to_row(queue))

    async def update(self, project: str, name: str, **changes: Any) -> bool:
        self._memo.changed()
        return self._sql.update("queues", Queue, "project", project, changes, " AND name = ?",
                                (name,))

    async def all(self, project: str | None = None) -> list[Queue]:
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        rows = self._sql.all(f"SELECT * FROM queues {where} ORDER BY project, name", params)
        queues = [from_row(Queue, r) for r in rows]
        # counters kept in each writing transaction (schema_lists.py, counts.py)
        counts = self._sql.all(
            f"SELECT project, queue, SUM(CASE WHEN status IN {SQL_RUNNING} THEN n END) AS running, "
            f"SUM(CASE WHEN status = '{RunStatus.QUEUED}' THEN n END) AS queued "
            "FROM queue_counts GROUP BY project, queue")
        by_key = {(r["project"], r["queue"]): (int(r["running"] or 0), int(r["queued"] or 0))
                  for r in counts}
        for (project, queue, status), n in self._counts.queues().items():
            running, queued = by_key.get((project, queue), (0, 0))
            by_key[(project, queue)] = ((running, queued + n) if status == RunStatus.QUEUED
                                        else (running + n, queued))
        for q in queues:
            q.running, q.queued = by_key.get((q.project, q.name), (q.running, q.queued))
        return queues

    async def paused(self) -> set[tuple[str, str]]:
        return set(self._memo.get("paused", lambda: {
            (r["project"], r["name"]) for r in self._sql.all(
                "SELECT project, name FROM queues WHERE paused = 1")}))

    async def limits(self) -> dict[tuple[str, str], int]:
        return dict(self._memo.get("limits", lambda: {
            (r["project"], r["name"]): int(r["concurrency_limit"]) for r in self._sql.all(
                "SELECT project, name, concurrency_limit FROM queues "
                "WHERE concurrency_limit IS NOT NULL")}))
