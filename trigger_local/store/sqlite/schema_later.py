"""The migrations after the first projects work, appended to `schema.MIGRATIONS` in order
(schema.py has reached its size). Append-only, as there: never edit one that has shipped."""

from __future__ import annotations

LATER: list[str] = [
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
]
