"""SQLite areas for what runs on time or by rule — cron schedules, rate limits (GCRA state),
debounce keys — and environment variables (store/catalog_areas.py has the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..catalog_areas import RateLimit
from ..models import Schedule
from .memo import CatalogMemo
from .rows import from_row, insert_sql, to_row
from .sql import Sql, Where

_INSERT_SCHEDULE = insert_sql("schedules", Schedule)


class SqliteSchedules:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def insert(self, schedule: Schedule) -> None:
        self._sql.run(_INSERT_SCHEDULE, to_row(schedule))

    async def get(self, schedule_id: str) -> Schedule | None:
        row = self._sql.one("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
        return None if row is None else from_row(Schedule, row)

    async def find_by_key(self, project: str, deduplication_key: str) -> Schedule | None:
        row = self._sql.one("SELECT * FROM schedules WHERE project = ? AND deduplication_key = ?",
                            (project, deduplication_key))
        return None if row is None else from_row(Schedule, row)

    async def update(self, schedule_id: str, **changes: Any) -> bool:
        return self._sql.update("schedules", Schedule, "id", schedule_id, changes)

    async def delete(self, schedule_id: str) -> bool:
        return self._sql.run("DELETE FROM schedules WHERE id = ?", (schedule_id,)) > 0

    async def page(self, offset: int = 0, limit: int = 25, *, type_: str | None = None,
                   task_id: str | None = None,
                   project: str | None = None) -> tuple[list[Schedule], int]:
        q = Where()
        q.one_or_any("project", project)
        q.one_or_any("type", type_)
        q.one_or_any("task_id", task_id)
        total = self._sql.one(f"SELECT COUNT(*) AS n FROM schedules {q.clause()}", q.params)
        rows = self._sql.all(f"SELECT * FROM schedules {q.clause()} ORDER BY created_at, id "
                             "LIMIT ? OFFSET ?", (*q.params, limit, offset))
        return [from_row(Schedule, r) for r in rows], int(total["n"]) if total else 0


class SqliteRateLimits:
    def __init__(self, sql: Sql, memo: CatalogMemo) -> None:
        self._sql = sql
        self._memo = memo  # on the writer, what dequeues read every time (memo.py)

    async def set(self, project: str, queue: str, limit: RateLimit | None) -> None:
        self._memo.changed()
        if limit is None:
            self._sql.run("DELETE FROM rate_limits WHERE project = ? AND queue = ?",
                          (project, queue))
            return
        self._sql.run(
            "INSERT OR REPLACE INTO rate_limits (project, queue, limit_n, period_s, per_key) "
            "VALUES (?,?,?,?,?)", (project, queue, int(limit["limit"]), float(limit["period_s"]),
                                   int(bool(limit.get("per_key")))))

    async def all(self, project: str | None = None) -> dict[tuple[str, str], RateLimit]:
        if project is not None:
            return self._all(project)
        # each dequeue's (engine/ratelimits.py `gate`): copies, the gate keeps them
        return {key: dict(limit) for key, limit in
                self._memo.get("rate_limits", lambda: self._all(None)).items()}

    def _all(self, project: str | None) -> dict[tuple[str, str], RateLimit]:
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        rows = self._sql.all(f"SELECT * FROM rate_limits {where}", params)
        return {(r["project"], r["queue"]): {"limit": r["limit_n"], "period_s": r["period_s"],
                                             "per_key": bool(r["per_key"])} for r in rows}

    async def state(self, queues: Sequence[tuple[str, str]]) -> dict[tuple[str, str, str], float]:
        if not queues:
            return {}
        wanted, names = set(queues), sorted({name for _, name in queues})
        rows = self._sql.all("SELECT project, queue, ckey, tat FROM rate_state WHERE queue IN "
                             f"({','.join('?' * len(names))})", names)
        return {(r["project"], r["queue"], r["ckey"]): r["tat"] for r in rows
                if (r["project"], r["queue"]) in wanted}

    async def save_state(self, project: str, queue: str, key: str, tat: float,
                         blocked_until: float | None) -> None:
        self._sql.run("INSERT OR REPLACE INTO rate_state (project, queue, ckey, tat, "
                      "blocked_until) VALUES (?,?,?,?,?)",
                      (project, queue, key, tat, blocked_until))

    async def clear_due_blocks(self, now: float) -> int:
        return self._sql.run("UPDATE rate_state SET blocked_until = NULL "
                             "WHERE blocked_until IS NOT NULL AND blocked_until <= ?", (now,))


class SqliteDebounces:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def get(self, project: str, task_id: str, key: str) -> tuple[str, float] | None:
        row = self._sql.one("SELECT run_id, first_at FROM debounces "
                            "WHERE project = ? AND task_id = ? AND key = ?",
                            (project, task_id, key))
        return None if row is None else (row["run_id"], row["first_at"])

    async def set(self, project: str, task_id: str, key: str, run_id: str,
                  first_at: float) -> None:
        self._sql.run("INSERT OR REPLACE INTO debounces (project, task_id, key, run_id, first_at) "
                      "VALUES (?,?,?,?,?)", (project, task_id, key, run_id, first_at))


class SqliteEnvVars:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def all(self, project: str, env: str) -> list[dict[str, Any]]:
        rows = self._sql.all("SELECT name, value, is_secret FROM env_vars WHERE project = ? "
                             "AND env = ? ORDER BY name", (project, env))
        return [{"name": r["name"], "value": r["value"], "isSecret": bool(r["is_secret"])}
                for r in rows]

    async def get(self, project: str, env: str, name: str) -> dict[str, Any] | None:
        row = self._sql.one("SELECT name, value, is_secret FROM env_vars "
                            "WHERE project = ? AND env = ? AND name = ?", (project, env, name))
        return None if row is None else {"name": row["name"], "value": row["value"],
                                         "isSecret": bool(row["is_secret"])}

    async def put(self, project: str, env: str, name: str, value: str, is_secret: bool | None,
                  now: float, *, override: bool = True) -> None:
        conflict = ("DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                    "is_secret = COALESCE(:keep_secret, env_vars.is_secret)") if override \
            else "DO NOTHING"
        self._sql.run(
            "INSERT INTO env_vars (project, env, name, value, is_secret, updated_at) VALUES "
            "(:project, :env, :name, :value, COALESCE(:keep_secret, 0), :now) "
            f"ON CONFLICT (project, env, name) {conflict}",
            {"project": project, "env": env, "name": name, "value": value, "now": now,
             "keep_secret": None if is_secret is None else int(is_secret)})

    async def delete(self, project: str, env: str, name: str) -> bool:
        return self._sql.run("DELETE FROM env_vars WHERE project = ? AND env = ? AND name = ?",
                             (project, env, name)) > 0
