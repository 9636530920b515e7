"""The store's operations for everything that runs on time: cron schedules, rate-limit state
(GCRA theoretical arrival times) and debounce keys. Mixed into `Ops`, so the same contract
holds: every method runs inside the transaction or read it was obtained from; `get_*` return
None when the record does not exist; updates return False when no row matched."""

from __future__ import annotations

from typing import Any

from .models import Schedule
from .rows import columns, encode_changes, from_row, to_row

_SCHEDULE_COLS = columns(Schedule)
_INSERT_SCHEDULE = (f"INSERT INTO schedules ({', '.join(_SCHEDULE_COLS)}) "
                    f"VALUES ({', '.join(':' + c for c in _SCHEDULE_COLS)})")


class ScheduleOps:
    _db: Any

    async def _one(self, sql: str, params: Any = ()) -> Any: ...  # provided by Ops
    async def _all(self, sql: str, params: Any = ()) -> list[Any]: ...  # provided by Ops

    # -- schedules -------------------------------------------------------------------------
    async def insert_schedule(self, schedule: Schedule) -> None:
        await self._db.execute(_INSERT_SCHEDULE, to_row(schedule))

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = await self._one("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
        return None if row is None else from_row(Schedule, row)

    async def find_schedule_by_key(self, project: str, deduplication_key: str) -> Schedule | None:
        """Deduplication keys are per project."""
        row = await self._one("SELECT * FROM schedules WHERE project = ? AND deduplication_key = ?",
                              (project, deduplication_key))
        return None if row is None else from_row(Schedule, row)

    async def update_schedule(self, schedule_id: str, **changes: Any) -> bool:
        enc = encode_changes(Schedule, changes)
        if not enc:
            return True
        sets = ", ".join(f"{k} = ?" for k in enc)
        cur = await self._db.execute(f"UPDATE schedules SET {sets} WHERE id = ?", (*enc.values(), schedule_id))
        return bool(cur.rowcount > 0)

    async def delete_schedule(self, schedule_id: str) -> bool:
        cur = await self._db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
        return bool(cur.rowcount > 0)

    async def list_schedules(self, offset: int = 0, limit: int = 25, *, type_: str | None = None,
                             task_id: str | None = None, project: str | None = None) -> tuple[list[Schedule], int]:
        """One page of schedules, oldest first, and the total count of the filter."""
        where: list[str] = []
        params: list[Any] = []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if type_ is not None:
            where.append("type = ?")
            params.append(type_)
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = await self._one(f"SELECT COUNT(*) AS n FROM schedules{clause}", params)
        rows = await self._all(f"SELECT * FROM schedules{clause} ORDER BY created_at, id LIMIT ? OFFSET ?",
                               (*params, limit, offset))
        return [from_row(Schedule, r) for r in rows], int(total["n"])

    async def due_schedules(self, now: float, limit: int = 500) -> list[Schedule]:
        rows = await self._all(
            "SELECT * FROM schedules WHERE active = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? "
            "ORDER BY next_run_at LIMIT ?", (now, limit))
        return [from_row(Schedule, r) for r in rows]

    # -- rate limits -----------------------------------------------------------------------
    async def set_rate_limit(self, project: str, queue: str, limit: dict[str, Any] | None) -> None:
        """Set (or with None, clear) the rate limit of `project`'s `queue`; its GCRA state is kept."""
        if limit is None:
            await self._db.execute("DELETE FROM rate_limits WHERE project = ? AND queue = ?", (project, queue))
            return
        await self._db.execute(
            "INSERT OR REPLACE INTO rate_limits (project, queue, limit_n, period_s, per_key) VALUES (?,?,?,?,?)",
            (project, queue, int(limit["limit"]), float(limit["period_s"]), int(bool(limit.get("per_key")))))

    async def rate_limits(self, project: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """The rate limit of each limited queue (of `project`), per (project, queue)."""
        where, params = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        rows = await self._all(f"SELECT * FROM rate_limits {where}", params)
        return {(r["project"], r["queue"]): {"limit": r["limit_n"], "period_s": r["period_s"],
                                             "per_key": bool(r["per_key"])} for r in rows}

    async def rate_state(self, queues: list[tuple[str, str]]) -> dict[tuple[str, str, str], float]:
        """Theoretical arrival time per (project, queue, key) of the given (project, queue)s."""
        if not queues:
            return {}
        wanted, names = set(queues), sorted({name for _, name in queues})
        rows = await self._all(f"SELECT project, queue, ckey, tat FROM rate_state WHERE queue IN "
                               f"({','.join('?' * len(names))})", names)
        return {(r["project"], r["queue"], r["ckey"]): r["tat"] for r in rows if (r["project"], r["queue"]) in wanted}

    async def save_rate_state(self, project: str, queue: str, key: str, tat: float,
                              blocked_until: float | None) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO rate_state (project, queue, ckey, tat, blocked_until) VALUES (?,?,?,?,?)",
            (project, queue, key, tat, blocked_until))

    async def clear_due_rate_blocks(self, now: float) -> int:
        """Forget wake-ups that are due; the dispatcher's next round will try those queues."""
        cur = await self._db.execute(
            "UPDATE rate_state SET blocked_until = NULL WHERE blocked_until IS NOT NULL AND blocked_until <= ?",
            (now,))
        return int(cur.rowcount)

    # -- debounce --------------------------------------------------------------------------
    async def get_debounce(self, project: str, task_id: str, key: str) -> tuple[str, float] | None:
        """(run_id, first_at) of the debounce key of `project`'s `task_id`, or None."""
        row = await self._one("SELECT run_id, first_at FROM debounces WHERE project = ? AND task_id = ? AND key = ?",
                              (project, task_id, key))
        return None if row is None else (row["run_id"], row["first_at"])

    async def set_debounce(self, project: str, task_id: str, key: str, run_id: str, first_at: float) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO debounces (project, task_id, key, run_id, first_at) VALUES (?,?,?,?,?)",
            (project, task_id, key, run_id, first_at))
