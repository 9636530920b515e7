"""PostgreSQL areas for what runs on time or by rule — cron schedules, rate limits (GCRA
state), debounce keys — and environment variables (store/catalog_areas.py has the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..catalog_areas import RateLimit
from ..models import Schedule
from ..sqlite.rows import from_row
from ..sqlite.sql import Where
from . import dequeue_reads
from .sql import PgSql, insert_sql, values

_INSERT_SCHEDULE = insert_sql("schedules", Schedule)


class PgSchedules:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def insert(self, schedule: Schedule) -> None:
        self._sql.note_timers_of(schedule)
        await self._sql.run(_INSERT_SCHEDULE, values(schedule))

    async def get(self, schedule_id: str) -> Schedule | None:
        row = await self._sql.one("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
        return None if row is None else from_row(Schedule, row)

    async def find_by_key(self, project: str, deduplication_key: str) -> Schedule | None:
        row = await self._sql.one(
            "SELECT * FROM schedules WHERE project = ? AND deduplication_key = ?",
            (project, deduplication_key))
        return None if row is None else from_row(Schedule, row)

    async def update(self, schedule_id: str, **changes: Any) -> bool:
        return await self._sql.update("schedules", Schedule, "id", schedule_id, changes)

    async def delete(self, schedule_id: str) -> bool:
        return await self._sql.run("DELETE FROM schedules WHERE id = ?", (schedule_id,)) > 0

    async def page(self, offset: int = 0, limit: int = 25, *, type_: str | None = None,
                   task_id: str | None = None,
                   project: str | None = None) -> tuple[list[Schedule], int]:
        q = Where()
        q.one_or_any("project", project)
        q.one_or_any("type", type_)
        q.one_or_any("task_id", task_id)
        total = await self._sql.value(f"SELECT COUNT(*) FROM schedules {q.clause()}", q.params)
        rows = await self._sql.all(f"SELECT * FROM schedules {q.clause()} "
                                   "ORDER BY created_at, id LIMIT ? OFFSET ?",
                                   (*q.params, limit, offset))
        return [from_row(Schedule, r) for r in rows], int(total or 0)


class PgRateLimits:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def set(self, project: str, queue: str, limit: RateLimit | None) -> None:
        if limit is None:
            await self._sql.run("DELETE FROM rate_limits WHERE project = ? AND queue = ?",
                                (project, queue))
            return
        await self._sql.run(
            "INSERT INTO rate_limits (project, queue, limit_n, period_s, per_key) "
            "VALUES (?,?,?,?,?) ON CONFLICT (project, queue) DO UPDATE SET "
            "limit_n = excluded.limit_n, period_s = excluded.period_s, per_key = excluded.per_key",
            (project, queue, int(limit["limit"]), float(limit["period_s"]),
             int(bool(limit.get("per_key")))))

    async def all(self, project: str | None = None) -> dict[tuple[str, str], RateLimit]:
        rows = await self._sql.all(dequeue_reads.RATE_LIMITS) if project is None else \
            await self._sql.all(f"{dequeue_reads.RATE_LIMITS}WHERE project = ?", (project,))
        return {(r["project"], r["queue"]): {"limit": r["limit_n"], "period_s": r["period_s"],
                                             "per_key": bool(r["per_key"])} for r in rows}

    async def state(self, queues: Sequence[tuple[str, str]]) -> dict[tuple[str, str, str], float]:
        if not queues:
            return {}
        wanted, names = set(queues), sorted({name for _, name in queues})
        rows = await self._sql.all("SELECT project, queue, ckey, tat FROM rate_state "
                                   "WHERE queue = ANY(?::text[])", (names,))
        return {(r["project"], r["queue"], r["ckey"]): r["tat"] for r in rows
                if (r["project"], r["queue"]) in wanted}

    async def save_state(self, project: str, queue: str, key: str, tat: float,
                         blocked_until: float | None) -> None:
        self._sql.note_timers({"blocked_until": blocked_until})
        await self._sql.run(
            "INSERT INTO rate_state (project, queue, ckey, tat, blocked_until) "
            "VALUES (?,?,?,?,?) ON CONFLICT (project, queue, ckey) DO UPDATE SET "
            "tat = excluded.tat, blocked_until = excluded.blocked_until",
            (project, queue, key, tat, blocked_until))

    async def clear_due_blocks(self, now: float) -> int:
        return await self._sql.run("UPDATE rate_state SET blocked_until = NULL "
                                   "WHERE blocked_until IS NOT NULL AND blocked_until <= ?",
                                   (now,))


class PgDebounces:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def get(self, project: str, task_id: str, key: str) -> tuple[str, float] | None:
        row = await self._sql.one("SELECT run_id, first_at FROM debounces "
                                  "WHERE project = ? AND task_id = ? AND key = ?",
                                  (project, task_id, key))
        return None if row is None else (row["run_id"], row["first_at"])

    async def set(self, project: str, task_id: str, key: str, run_id: str,
                  first_at: float) -> None:
        await self._sql.run(
            "INSERT INTO debounces (project, task_id, key, run_id, first_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT (project, task_id, key) DO UPDATE SET run_id = excluded.run_id, "
            "first_at = excluded.first_at", (project, task_id, key, run_id, first_at))


class PgEnvVars:
    def __init__(self, sql: PgSql) -> None:
        self._sql = sql

    async def all(self, project: str, env: str) -> list[dict[str, Any]]:
        rows = await self._sql.all("SELECT name, value, is_secret FROM env_vars WHERE project = ? "
                                   "AND env = ? ORDER BY name", (project, env))
        return [{"name": r["name"], "value": r["value"], "isSecret": bool(r["is_secret"])}
                for r in rows]

    async def get(self, project: str, env: str, name: str) -> dict[str, Any] | None:
        row = await self._sql.one("SELECT name, value, is_secret FROM env_vars "
                                  "WHERE project = ? AND env = ? AND name = ?",
                                  (project, env, name))
        return None if row is None else {"name": row["name"], "value": row["value"],
                                         "isSecret": bool(row["is_secret"])}

    async def put(self, project: str, env: str, name: str, value: str, is_secret: bool | None,
                  now: float, *, override: bool = True) -> None:
        # through PgSql, as every statement (review rv9d: sent on the connection, it went
        # before a part's held-back SAVEPOINT, and the part's rollback left it written)
        secret = None if is_secret is None else int(is_secret)
        conflict = ("DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                    "is_secret = COALESCE(?::bigint, env_vars.is_secret)") if override \
            else "DO NOTHING"
        await self._sql.run(
            "INSERT INTO env_vars (project, env, name, value, is_secret, updated_at) VALUES "
            f"(?, ?, ?, ?, COALESCE(?::bigint, 0), ?) ON CONFLICT (project, env, name) "
            f"{conflict}", (project, env, name, value, secret, now)
            + ((secret,) if override else ()))

    async def delete(self, project: str, env: str, name: str) -> bool:
        return await self._sql.run("DELETE FROM env_vars WHERE project = ? AND env = ? "
                                   "AND name = ?", (project, env, name)) > 0
