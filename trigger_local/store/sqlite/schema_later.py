"""The migrations after the first ten (store/sqlite/schema.py, which holds the list and
reached the 400-line limit). Append-only, like the first ones: never edit one that has shipped,
add a new one at the end."""

from __future__ import annotations

from . import steps
from .schema_lists import LISTS_AND_RETENTION
from .sql import SQL_NOT_STARTED, SQL_RUNNING

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
]
