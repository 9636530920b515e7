"""PostgreSQL's answers to a history's questions (issue #17): what retention prunes and what
compaction walks, the runs on task processes at start-up, and deleting runs with what hangs off
them; store/sqlite/runs.py's statements in PostgreSQL's words. Counters per status and a tags
table are SQLite's (triggers in schema_lists.py); here `count_by_status` and tag filters read the
runs table itself (docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Sequence

from ...statuses import RunStatus, WaitpointStatus
from ..models import Run
from ..sqlite.rows import columns, from_row
from ..sqlite.sql import SQL_FINAL, SQL_RUNNING, sql_in
from .sql import PgSql

_RUN_COLS = ", ".join(columns(Run))
_HELD = sql_in({RunStatus.EXECUTING, RunStatus.WAITING, RunStatus.QUEUED, RunStatus.DEQUEUED})
_STORE = "application/store"  # an offloaded payload names a packet (packet_store.py)
_WAITING = WaitpointStatus.WAITING

#: appended to schema.MIGRATIONS: the finished runs in completion order (retention, compaction)
#: and the runs that name a worker (start-up)
MIGRATION = f"""
CREATE INDEX runs_finished ON runs(completed_at, id) WHERE status IN {SQL_FINAL};
CREATE INDEX runs_worker ON runs(worker_id) WHERE worker_id IS NOT NULL;
"""


async def finished_before(sql: PgSql, before: float, limit: int) -> list[Run]:
    rows = await sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE completed_at < ? "
                         f"AND status IN {SQL_FINAL} ORDER BY completed_at LIMIT ?",
                         (before, limit))
    return [from_row(Run, r) for r in rows]


async def finished_between(sql: PgSql, after: tuple[float, str] | None, before: float,
                           limit: int) -> list[Run]:
    if after is None:
        rows = await sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE completed_at < ? AND status "
                             f"IN {SQL_FINAL} ORDER BY completed_at, id LIMIT ?", (before, limit))
    else:
        rows = await sql.all(f"SELECT {_RUN_COLS} FROM runs WHERE (completed_at, id) > (?, ?) "
                             f"AND completed_at < ? AND status IN {SQL_FINAL} "
                             "ORDER BY completed_at, id LIMIT ?", (*after, before, limit))
    return [from_row(Run, r) for r in rows]


async def packets_in_use(sql: PgSql, names: Sequence[str]) -> set[str]:
    if not names:
        return set()
    rows = await sql.all("SELECT DISTINCT payload FROM runs WHERE payload_type = ? "
                         "AND payload = ANY(?::text[])", (_STORE, list(names)))
    return {r["payload"] for r in rows}


async def compact_history(sql: PgSql, run_ids: Sequence[str],
                          event_types: Sequence[str]) -> None:
    if not run_ids or not event_types:
        return
    ids = list(run_ids)
    await sql.run("DELETE FROM snapshots WHERE run_id = ANY(?::text[]) AND id NOT IN "
                  "(SELECT snapshot_id FROM runs WHERE id = ANY(?::text[]) "
                  "AND snapshot_id IS NOT NULL)", (ids, ids))
    await sql.run("DELETE FROM events WHERE run_id = ANY(?::text[]) AND type = ANY(?::text[])",
                  (ids, list(event_types)))


async def delete_many(sql: PgSql, run_ids: Sequence[str]) -> int:
    if not run_ids:
        return 0
    ids = list(run_ids)
    await sql.run(
        "DELETE FROM waitpoints WHERE id IN (SELECT waitpoint_id FROM runs WHERE id = "
        "ANY(?::text[]) AND waitpoint_id IS NOT NULL) AND status <> ? AND NOT EXISTS "
        "(SELECT 1 FROM run_waitpoints rw WHERE rw.waitpoint_id = waitpoints.id)",
        (ids, _WAITING))
    await sql.run("DELETE FROM stream_chunks WHERE stream_id IN (SELECT id FROM streams "
                  "WHERE run_id = ANY(?::text[]))", (ids,))
    for table in ("snapshots", "attempts", "events", "logs", "run_waitpoints", "checkpoints",
                  "streams", "run_steps"):
        await sql.run(f"DELETE FROM {table} WHERE run_id = ANY(?::text[])", (ids,))
    return await sql.run("DELETE FROM runs WHERE id = ANY(?::text[])", (ids,))


async def on_workers(sql: PgSql) -> list[Run]:
    """Those of this daemon, of none, or of a daemon whose lease ran out (as `with_status`)."""
    mine, params = sql.owner.held_here_or_orphaned("runs")
    rows = await sql.all(
        f"SELECT {_RUN_COLS} FROM runs WHERE (status IN {SQL_RUNNING} OR (worker_id IS NOT NULL "
        f"AND status IN {_HELD})) AND {mine}", params)
    return [from_row(Run, r) for r in rows]
