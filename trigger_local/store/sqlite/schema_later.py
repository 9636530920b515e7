"""The migrations after the first ten (store/sqlite/schema.py, which holds the list and
reached the 400-line limit). Append-only, like the first ones: never edit one that has shipped,
add a new one at the end."""

from __future__ import annotations

from . import steps
from .schema_compact import COMPACT_RUNS
from .schema_lists import LISTS_AND_RETENTION
from .sql import SQL_HELD_APART, SQL_LIVE, SQL_NOT_STARTED, SQL_RUNNING

LATER_MIGRATIONS: list[str] = [
    # 11: the dispatcher's queries over only their runs (issue #17); the IN lists as sql.py's
    # queries spell them, since a partial index serves a query only when its WHERE has the term
    f"""
    CREATE INDEX runs_ready ON runs(project, queue, queued_at, id) WHERE status = 'QUEUED';
    CREATE INDEX runs_holding ON runs(project, queue, concurrency_key)
        WHERE status IN {SQL_RUNNING};
    CREATE INDEX runs_due_delay ON runs(delay_until) WHERE status = 'DELAYED';
    CREATE INDEX runs_due_ttl ON runs(expires_at)
        WHERE status IN {SQL_NOT_STARTED} AND expires_at IS NOT NULL;
    CREATE INDEX runs_due_deadline ON runs(deadline_at)
        WHERE status IN {SQL_RUNNING} AND deadline_at IS NOT NULL;
    DROP INDEX runs_delay;
    DROP INDEX runs_expires;
    DROP INDEX runs_deadline;
    """,
    steps.MIGRATION,  # a run's durable records (issue #12, docs/durability.md)
    # 13: a million runs (issue #17): list indexes, tags, counters, retention (schema_lists.py)
    LISTS_AND_RETENTION,
    # runs of an async task share task processes (issue #13); a version indexed before this
    # keeps one run per process
    """
    ALTER TABLE tasks ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
    """,
    # waitpoint tokens, batches and environment variables belong to a project too (#11): a
    # project's key sees only its own. Existing tokens and batches get the project of the run
    # that made them (none: the daemon's key only); existing variables, which every project's
    # processes got, are copied to each project (proj_local when there is none).
    """
    ALTER TABLE waitpoints ADD COLUMN project TEXT;
    UPDATE waitpoints SET project = (SELECT r.project FROM runs r
        WHERE r.id = waitpoints.created_by_run_id) WHERE type = 'MANUAL';
    DROP INDEX waitpoints_key;
    CREATE INDEX waitpoints_key ON waitpoints(idempotency_key, project) WHERE idempotency_key IS NOT NULL;
    ALTER TABLE batches ADD COLUMN project TEXT;
    UPDATE batches SET project = (SELECT r.project FROM runs r WHERE r.id = batches.parent_run_id);
    CREATE TABLE env_vars_v2 (
        project TEXT NOT NULL,
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        is_secret INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (project, env, name)
    );
    INSERT INTO env_vars_v2 SELECT COALESCE(p.ref, 'proj_local'), e.env, e.name, e.value, e.is_secret,
        e.updated_at FROM env_vars e LEFT JOIN projects p ON 1;
    DROP TABLE env_vars;
    ALTER TABLE env_vars_v2 RENAME TO env_vars;
    """,  # noqa: E501 - a shipped migration is never edited
    # interrupted attempts do not count and are not numbered (#10): a run knows how many it
    # had, so the API, the CLI and ctx.attempt.number count only attempts that counted
    """
    ALTER TABLE runs ADD COLUMN interrupted_count INTEGER NOT NULL DEFAULT 0;
    UPDATE runs SET interrupted_count = (SELECT COUNT(*) FROM attempts a
        WHERE a.run_id = runs.id AND a.counts = 0)
        WHERE id IN (SELECT run_id FROM attempts WHERE counts = 0);
    """,
    # 17: fewer bytes per finished run (#17). runs_queued (every run, by status) answered
    # nothing runs_ready and runs_status_created do not; a batch's "any run still live?" needs
    # only its live runs, so the batch's index stops holding a row per finished run
    f"""
    DROP INDEX runs_queued;
    DROP INDEX runs_batch_status;
    CREATE INDEX runs_batch_live ON runs(batch_id)
        WHERE batch_id IS NOT NULL AND status IN {SQL_LIVE};
    """,
    # 18: the runs table rebuilt for fewer bytes per finished run (#17, schema_compact.py)
    COMPACT_RUNS,
    # 19: a status change is counted by the store in its transaction (counts.py, #13): the
    # update triggers wrote the same counter rows four statements a row
    """
    DROP TRIGGER runs_count_update;
    DROP TRIGGER runs_queue_count_update;
    """,
    # 20: fewer index writes per status change (#13). SQLite rewrites an index whose columns
    # or WHERE a statement changes: a start (QUEUED → EXECUTING) deleted and re-inserted a
    # batch run's unchanged runs_batch_live row (its WHERE read `status`), and a start and a
    # finish each wrote runs_worker, whose only reader wants the held runs that are not
    # running (the running ones it finds by runs_holding). A live run is one not completed:
    # every move to a final status sets completed_at, and none leaves one. An insert counts
    # its run in the store's journal, like a status change (counts.py): its two triggers
    # wrote the same counter rows once per run. The journal's sums are written at COMMIT, so a
    # delete's triggers add their -1 whether or not the row is there yet (an upsert).
    f"""
    DROP INDEX runs_batch_live;
    CREATE INDEX runs_batch_live ON runs(batch_id)
        WHERE batch_id IS NOT NULL AND completed_at IS NULL;
    DROP INDEX runs_worker;
    CREATE INDEX runs_worker ON runs(worker_id)
        WHERE worker_id IS NOT NULL AND status IN {SQL_HELD_APART};
    DROP TRIGGER runs_count_insert;
    DROP TRIGGER runs_queue_count_insert;
    DROP TRIGGER runs_count_delete;
    DROP TRIGGER runs_queue_count_delete;
    CREATE TRIGGER runs_count_delete AFTER DELETE ON runs BEGIN
        INSERT INTO run_counts (status, n) VALUES (old.status, -1)
            ON CONFLICT (status) DO UPDATE SET n = n - 1;
    END;
    CREATE TRIGGER runs_queue_count_delete AFTER DELETE ON runs
        WHEN old.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') BEGIN
        INSERT INTO queue_counts (project, queue, status, n)
            VALUES (COALESCE(old.project, ''), old.queue, old.status, -1)
            ON CONFLICT (project, queue, status) DO UPDATE SET n = n - 1;
    END;
    """,
    # 21: the request keys' answers in the order retention forgets them (engine/retention.py)
    "CREATE INDEX request_cache_created ON request_cache(created_at);",
    # 22: the executing attempts' index had no reader left (attempts.open is gone): two index
    # writes per run (an attempt's start and end) for nothing
    "DROP INDEX attempts_open;",
    # 23: each attempt's logs against their cap (engine/log_cap.py), counted in the commit
    # that stores the lines: a daemon adopting a capped attempt knows what was dropped before
    """
    CREATE TABLE log_usage (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        stored_lines INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        dropped_lines INTEGER NOT NULL,
        dropped_bytes INTEGER NOT NULL,
        marked INTEGER NOT NULL,
        PRIMARY KEY (run_id, attempt)
    ) WITHOUT ROWID;
    """,
]
