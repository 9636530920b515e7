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
    # the current one too: the run row says what it said (run_areas.py)
    await sql.run("DELETE FROM snapshots WHERE run_id = ANY(?::text[])", (ids,))
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
    for table in ("snapshots", "attempts", "events", "logs", "log_usage", "run_waitpoints",
                  "checkpoints", "streams", "run_steps"):
        await sql.run(f"DELETE FROM {table} WHERE run_id = ANY(?::text[])", (ids,))
    return await sql.run("DELETE FROM runs WHERE id = ANY(?::text[])", (ids,))


async def on_workers(sql: PgSql) -> list[Run]:
    """Those of this daemon, of none, or of a daemon whose lease ran out (as `with_status`)."""
    mine, params = sql.owner.held_here_or_orphaned("runs")
    rows = await sql.all(
        f"SELECT {_RUN_COLS} FROM runs WHERE (status IN {SQL_RUNNING} OR (worker_id IS NOT NULL "
        f"AND status IN {_HELD})) AND {mine}", params)
    return [from_row(Run, r) for r in rows]


#: appended to schema.MIGRATIONS (6): tokens, batches and environment variables belong to a
#: project (issue #11; existing rows as SQLite's migration gives them), and a run counts the
#: attempts the daemon interrupted (issue #10)
PROJECTS_MIGRATION = """
ALTER TABLE waitpoints ADD COLUMN project TEXT COLLATE "C";
UPDATE waitpoints SET project = (SELECT r.project FROM runs r
    WHERE r.id = waitpoints.created_by_run_id) WHERE type = 'MANUAL';
ALTER TABLE batches ADD COLUMN project TEXT COLLATE "C";
UPDATE batches SET project = (SELECT r.project FROM runs r WHERE r.id = batches.parent_run_id);
CREATE TABLE env_vars_v2 (
    project TEXT COLLATE "C" NOT NULL,
    env TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    is_secret BIGINT NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project, env, name)
);
INSERT INTO env_vars_v2 SELECT COALESCE(p.ref, 'proj_local'), e.env, e.name, e.value,
    e.is_secret, e.updated_at FROM env_vars e LEFT JOIN projects p ON TRUE;
DROP TABLE env_vars;
ALTER TABLE env_vars_v2 RENAME TO env_vars;
ALTER TABLE runs ADD COLUMN interrupted_count BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET interrupted_count = (SELECT COUNT(*) FROM attempts a
    WHERE a.run_id = runs.id AND a.counts = 0)
    WHERE id IN (SELECT run_id FROM attempts WHERE counts = 0);
"""
