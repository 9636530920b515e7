"""The store's operations for projects, their versions (with tasks) and their queues. Mixed into
`Ops` (store/ops.py), so the same contract holds: every method runs inside the transaction or
read it was obtained from; `get_*` return None when the record does not exist; updates return
False when no row matched. Queues are keyed by (project, name): two projects may both have
`task/hello`."""

from __future__ import annotations

import json
from typing import Any

from .models import Project, ProjectDefaults, Queue, TaskDef, Version
from .rows import columns, encode_changes, from_row, to_row
from .status_sql import SQL_RUNNING, SQL_RUNNING_OR_QUEUED

_PROJECT_COLS = columns(Project)
_QUEUE_COLS = columns(Queue)


class ProjectOps:
    _db: Any

    async def _one(self, sql: str, params: Any = ()) -> Any:
        raise NotImplementedError  # provided by Ops

    async def _all(self, sql: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError  # provided by Ops

    # -- projects --------------------------------------------------------------------------
    async def upsert_project(self, project: Project) -> None:
        """Insert the project, or replace the row of the same ref (created_at is kept)."""
        await self._db.execute(
            f"INSERT INTO projects ({', '.join(_PROJECT_COLS)}) VALUES ({', '.join(':' + c for c in _PROJECT_COLS)}) "
            "ON CONFLICT(ref) DO UPDATE SET project_dir = excluded.project_dir, dev = excluded.dev, "
            "left_at = excluded.left_at, updated_at = excluded.updated_at", to_row(project))

    async def update_project(self, ref: str, **changes: Any) -> bool:
        enc = encode_changes(Project, changes)
        if not enc:
            return True
        sets = ", ".join(f"{k} = ?" for k in enc)
        cur = await self._db.execute(f"UPDATE projects SET {sets} WHERE ref = ?", (*enc.values(), ref))
        return bool(cur.rowcount > 0)

    async def get_project(self, ref: str) -> Project | None:
        row = await self._one("SELECT * FROM projects WHERE ref = ?", (ref,))
        return None if row is None else from_row(Project, row)

    async def list_projects(self) -> list[Project]:
        return [from_row(Project, r) for r in await self._all("SELECT * FROM projects ORDER BY ref")]

    # -- versions and tasks ----------------------------------------------------------------
    async def insert_version(self, version: Version) -> None:
        await self._db.execute(
            "INSERT INTO versions (id, project_dir, created_at, python, dirs, env, project, defaults) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (version.id, version.project_dir, version.created_at, version.python,
             json.dumps(version.dirs), json.dumps(version.env), version.project,
             json.dumps(version.defaults.to_dict())),
        )
        rows = [to_row(t) | {"version_id": version.id} for t in version.tasks]
        if rows:
            cols = ["version_id", *columns(TaskDef)]
            await self._db.executemany(
                f"INSERT INTO tasks ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", rows
            )

    async def get_version(self, version_id: str) -> Version | None:
        row = await self._one("SELECT * FROM versions WHERE id = ?", (version_id,))
        if row is None:
            return None
        tasks = await self._all("SELECT * FROM tasks WHERE version_id = ? ORDER BY task_id", (version_id,))
        return Version(
            id=row["id"], project_dir=row["project_dir"], created_at=row["created_at"],
            python=row["python"], dirs=json.loads(row["dirs"]), env=json.loads(row["env"]),
            tasks=[_task_from_row(t) for t in tasks], project=row["project"],
            defaults=ProjectDefaults.from_dict(json.loads(row["defaults"])),
        )

    async def latest_version(self, project: str | None = None) -> Version | None:
        """The newest version (of `project`, or of any project)."""
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        row = await self._one(f"SELECT id FROM versions {where} ORDER BY created_at DESC, rowid DESC LIMIT 1",
                              params)
        return None if row is None else await self.get_version(row["id"])

    async def current_versions(self) -> list[Version]:
        """The newest version of each project: what each project runs."""
        rows = await self._all("SELECT DISTINCT project FROM versions")
        found = [await self.latest_version(r["project"]) for r in rows]
        return [v for v in found if v is not None]

    async def list_versions(self, limit: int = 20) -> list[str]:
        rows = await self._all("SELECT id FROM versions ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [r["id"] for r in rows]

    async def get_task(self, version_id: str, task_id: str) -> TaskDef | None:
        row = await self._one("SELECT * FROM tasks WHERE version_id = ? AND task_id = ?", (version_id, task_id))
        return None if row is None else _task_from_row(row)

    # -- queues ----------------------------------------------------------------------------
    async def get_queue(self, project: str, name: str) -> Queue | None:
        """The queue `name` of `project` (or the queue whose id is `name`, in any project)."""
        row = await self._one("SELECT * FROM queues WHERE (project = ? AND name = ?) OR id = ?",
                              (project, name, name))
        return None if row is None else from_row(Queue, row)

    async def insert_queue(self, queue: Queue) -> None:
        await self._db.execute(
            f"INSERT OR IGNORE INTO queues ({', '.join(_QUEUE_COLS)}) VALUES ({', '.join(':' + c for c in _QUEUE_COLS)})",
            to_row(queue))

    async def update_queue(self, project: str, name: str, **changes: Any) -> bool:
        enc = encode_changes(Queue, changes)
        if not enc:
            return True
        sets = ", ".join(f"{k} = ?" for k in enc)
        cur = await self._db.execute(f"UPDATE queues SET {sets} WHERE project = ? AND name = ?",
                                     (*enc.values(), project, name))
        return bool(cur.rowcount > 0)

    async def list_queues(self, project: str | None = None) -> list[Queue]:
        """Every queue (of `project`), by project then name, with its running and queued counts."""
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        queues = [from_row(Queue, r) for r in await self._all(f"SELECT * FROM queues {where} ORDER BY project, name",
                                                              params)]
        counts = await self._all(
            f"SELECT project, queue, SUM(status IN {SQL_RUNNING}) AS running, "
            f"SUM(status = 'QUEUED') AS queued FROM runs WHERE status IN {SQL_RUNNING_OR_QUEUED} "
            "GROUP BY project, queue"
        )
        by_key = {(r["project"], r["queue"]): r for r in counts}
        for q in queues:
            if (q.project, q.name) in by_key:
                q.running = int(by_key[(q.project, q.name)]["running"] or 0)
                q.queued = int(by_key[(q.project, q.name)]["queued"] or 0)
        return queues

    async def paused_queues(self) -> set[tuple[str, str]]:
        """(project, name) of every paused queue."""
        return {(r["project"], r["name"]) for r in await self._all("SELECT project, name FROM queues WHERE paused = 1")}

    async def queue_limits(self) -> dict[tuple[str, str], int]:
        """Concurrency limit per (project, name), for the queues that have one."""
        rows = await self._all(
            "SELECT project, name, concurrency_limit FROM queues WHERE concurrency_limit IS NOT NULL")
        return {(r["project"], r["name"]): int(r["concurrency_limit"]) for r in rows}


def _task_from_row(row: Any) -> TaskDef:
    return from_row(TaskDef, {k: row[k] for k in row.keys() if k != "version_id"})
