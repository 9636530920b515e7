"""Append-only migrations. The schema version lives in `PRAGMA user_version`; never edit a
migration that has shipped, add a new one."""

from __future__ import annotations

from .schema_later import LATER_MIGRATIONS

MIGRATIONS: list[str] = [
    # 1: the core tables
    """
    CREATE TABLE versions (
        id TEXT PRIMARY KEY,
        project_dir TEXT NOT NULL,
        created_at REAL NOT NULL,
        python TEXT NOT NULL DEFAULT '',
        dirs TEXT NOT NULL DEFAULT '[]',
        env TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE tasks (
        version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        task_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        file TEXT NOT NULL DEFAULT '',
        export_name TEXT NOT NULL DEFAULT '',
        retry TEXT,
        max_duration_s REAL,
        machine TEXT,
        schema TEXT,
        queue_concurrency_limit INTEGER,
        queue_is_custom INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (version_id, task_id)
    );
    CREATE TABLE queues (
        name TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        concurrency_limit INTEGER,
        paused INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        status TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        snapshot_kind TEXT NOT NULL,
        queue TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        queued_at REAL NOT NULL,
        payload TEXT,
        payload_type TEXT NOT NULL,
        output TEXT,
        output_type TEXT,
        error TEXT,
        version_id TEXT,
        concurrency_key TEXT,
        delay_until REAL,
        expires_at REAL,
        started_at REAL,
        completed_at REAL,
        idempotency_key TEXT,
        idempotency_key_user TEXT,
        idempotency_expires_at REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        max_attempts INTEGER,
        max_duration_s REAL,
        priority REAL NOT NULL DEFAULT 0,
        machine TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        attempt_count INTEGER NOT NULL DEFAULT 0,
        parent_run_id TEXT,
        root_run_id TEXT,
        batch_id TEXT,
        resume_parent INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT,
        deadline_at REAL,
        executed_s REAL NOT NULL DEFAULT 0,
        waitpoint_id TEXT,
        is_test INTEGER NOT NULL DEFAULT 0,
        depth INTEGER NOT NULL DEFAULT 0
    );
    -- the dispatcher asks these on every round
    CREATE INDEX runs_queued ON runs(status, queue, queued_at);
    CREATE INDEX runs_delay ON runs(delay_until) WHERE delay_until IS NOT NULL;
    CREATE INDEX runs_expires ON runs(expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX runs_deadline ON runs(deadline_at) WHERE deadline_at IS NOT NULL;
    CREATE INDEX runs_idempotency ON runs(task_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_created ON runs(created_at, id);
    CREATE INDEX runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL;
    CREATE INDEX runs_batch ON runs(batch_id) WHERE batch_id IS NOT NULL;
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        at REAL NOT NULL,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX snapshots_run ON snapshots(run_id, at);
    CREATE TABLE attempts (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        worker_id TEXT,
        pid INTEGER,
        executor TEXT NOT NULL DEFAULT 'process',
        finished_at REAL,
        error TEXT,
        counts INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX attempts_run ON attempts(run_id, number);
    CREATE TABLE waitpoints (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        completed_at REAL,
        complete_after REAL,
        timeout_at REAL,
        output TEXT,
        output_type TEXT NOT NULL DEFAULT 'application/json',
        output_is_error INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT,
        idempotency_expires_at REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        owner_run_id TEXT,
        batch_id TEXT,
        created_by_run_id TEXT
    );
    CREATE INDEX waitpoints_after ON waitpoints(complete_after) WHERE status = 'WAITING' AND complete_after IS NOT NULL;
    CREATE INDEX waitpoints_timeout ON waitpoints(timeout_at) WHERE status = 'WAITING' AND timeout_at IS NOT NULL;
    CREATE INDEX waitpoints_key ON waitpoints(idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX waitpoints_type ON waitpoints(type, created_at);
    CREATE TABLE run_waitpoints (
        run_id TEXT NOT NULL,
        waitpoint_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, waitpoint_id)
    );
    CREATE INDEX run_waitpoints_wp ON run_waitpoints(waitpoint_id);
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        run_count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL,
        run_ids TEXT NOT NULL DEFAULT '[]',
        parent_run_id TEXT,
        idempotency_key TEXT,
        waitpoint_id TEXT
    );
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        version_id TEXT NOT NULL,
        token TEXT NOT NULL,
        pid INTEGER,
        started_at REAL NOT NULL,
        executor TEXT NOT NULL DEFAULT 'process'
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT,
        type TEXT NOT NULL,
        at REAL NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_run ON events(run_id, seq);
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        attempt INTEGER,
        at REAL NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        kind TEXT NOT NULL DEFAULT 'log',
        span_id TEXT,
        parent_span_id TEXT,
        ended_at REAL
    );
    CREATE INDEX logs_run ON logs(run_id, id);
    CREATE TABLE request_cache (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        response TEXT NOT NULL
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,  # noqa: E501 - a shipped migration is never edited
    # schedules (cron), rate-limit state and debounce keys (issue #6)
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        task_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        active INTEGER NOT NULL DEFAULT 1,
        deduplication_key TEXT UNIQUE,
        external_id TEXT,
        missed_policy TEXT NOT NULL DEFAULT 'latest',
        next_run_at REAL,
        last_run_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    -- the timer asks for the earliest active tick on every round
    CREATE INDEX schedules_due ON schedules(next_run_at) WHERE active = 1 AND next_run_at IS NOT NULL;
    CREATE INDEX schedules_created ON schedules(created_at, id);
    ALTER TABLE tasks ADD COLUMN schedule TEXT;
    ALTER TABLE tasks ADD COLUMN rate_limit TEXT;
    CREATE TABLE rate_limits (
        queue TEXT PRIMARY KEY,
        limit_n INTEGER NOT NULL,
        period_s REAL NOT NULL,
        per_key INTEGER NOT NULL DEFAULT 0
    );
    -- GCRA: one theoretical arrival time per (queue, key), blocked_until wakes the timer
    CREATE TABLE rate_state (
        queue TEXT NOT NULL,
        ckey TEXT NOT NULL,
        tat REAL NOT NULL,
        blocked_until REAL,
        PRIMARY KEY (queue, ckey)
    );
    CREATE TABLE debounces (
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        first_at REAL NOT NULL,
        PRIMARY KEY (task_id, key)
    );
    """,  # noqa: E501 - a shipped migration is never edited
    # CRIU checkpoints of waiting runs (issue #4): one row per dump, kept after the images are
    # deleted so `runs show` can still say what happened
    """
    CREATE TABLE checkpoints (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        worker_id TEXT NOT NULL,
        pid INTEGER NOT NULL,
        executor TEXT NOT NULL DEFAULT 'process',
        path TEXT NOT NULL,
        status TEXT NOT NULL,
        size_bytes INTEGER NOT NULL DEFAULT 0,
        dump_ms REAL,
        restore_ms REAL,
        error TEXT,
        created_at REAL NOT NULL,
        restored_at REAL
    );
    -- the executor loads the active ones at start, and runs show lists a run's
    CREATE INDEX checkpoints_run ON checkpoints(run_id, created_at);
    CREATE INDEX checkpoints_active ON checkpoints(status) WHERE status = 'active';
    """,
    # environment variables per environment slug (issue #3), injected into new task processes
    """
    CREATE TABLE env_vars (
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        is_secret INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (env, name)
    );
    """,
    # batch completion counts a batch's unfinished runs after every run that ends: an index on
    # (batch_id, status) lets that count read the index alone
    """
    CREATE INDEX runs_batch_status ON runs(batch_id, status) WHERE batch_id IS NOT NULL;
    """,
    # the schedule a run was triggered by (issue #6): runs.retrieve's `schedule`, filter[schedule]
    """
    ALTER TABLE runs ADD COLUMN schedule_id TEXT;
    CREATE INDEX runs_schedule ON runs(schedule_id, created_at) WHERE schedule_id IS NOT NULL;
    """,
    # the token list says which runs waited on each token, also after they went on (issue #5):
    # `run.waiting` events name the waitpoint, and this finds them without reading every event
    """
    CREATE INDEX events_waited_on ON events(json_extract(data, '$.waitpoint_id')) WHERE type = 'run.waiting';
    """,  # noqa: E501 - a shipped migration is never edited
    # one daemon, several projects (issue #11): versions, runs, queues, schedules, rate limits and
    # debounce keys belong to a project (the `project` ref of its trigger.toml). Rows from before
    # get `proj_local`, the ref `trigger-local init` wrote then. Tables keyed by a queue or task
    # name are rebuilt with the project in their key (SQLite cannot change a primary key).
    """
    CREATE TABLE projects (
        ref TEXT PRIMARY KEY,
        project_dir TEXT NOT NULL,
        dev INTEGER NOT NULL DEFAULT 0,
        left_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    INSERT INTO projects (ref, project_dir, created_at, updated_at)
        SELECT 'proj_local', project_dir, created_at, created_at FROM versions ORDER BY created_at DESC LIMIT 1;
    ALTER TABLE versions ADD COLUMN project TEXT NOT NULL DEFAULT 'proj_local';
    CREATE INDEX versions_project ON versions(project, created_at);
    -- NULL while no project is known: a run triggered before any project had its task
    ALTER TABLE runs ADD COLUMN project TEXT;
    UPDATE runs SET project = 'proj_local';
    DROP INDEX runs_queued;
    CREATE INDEX runs_queued ON runs(status, project, queue, queued_at);
    CREATE INDEX runs_project ON runs(project, created_at, id);
    CREATE TABLE queues_v2 (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        concurrency_limit INTEGER,
        paused INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (project, name)
    );
    INSERT INTO queues_v2 SELECT 'proj_local', name, id, type, concurrency_limit, paused, created_at FROM queues;
    DROP TABLE queues;
    ALTER TABLE queues_v2 RENAME TO queues;
    CREATE TABLE rate_limits_v2 (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        limit_n INTEGER NOT NULL,
        period_s REAL NOT NULL,
        per_key INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project, queue)
    );
    INSERT INTO rate_limits_v2 SELECT 'proj_local', queue, limit_n, period_s, per_key FROM rate_limits;
    DROP TABLE rate_limits;
    ALTER TABLE rate_limits_v2 RENAME TO rate_limits;
    CREATE TABLE rate_state_v2 (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        ckey TEXT NOT NULL,
        tat REAL NOT NULL,
        blocked_until REAL,
        PRIMARY KEY (project, queue, ckey)
    );
    INSERT INTO rate_state_v2 SELECT 'proj_local', queue, ckey, tat, blocked_until FROM rate_state;
    DROP TABLE rate_state;
    ALTER TABLE rate_state_v2 RENAME TO rate_state;
    CREATE TABLE debounces_v2 (
        project TEXT NOT NULL,
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        first_at REAL NOT NULL,
        PRIMARY KEY (project, task_id, key)
    );
    INSERT INTO debounces_v2 SELECT 'proj_local', task_id, key, run_id, first_at FROM debounces;
    DROP TABLE debounces;
    ALTER TABLE debounces_v2 RENAME TO debounces;
    CREATE TABLE schedules_v2 (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        type TEXT NOT NULL,
        task_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        active INTEGER NOT NULL DEFAULT 1,
        deduplication_key TEXT,
        external_id TEXT,
        missed_policy TEXT NOT NULL DEFAULT 'latest',
        next_run_at REAL,
        last_run_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (project, deduplication_key)
    );
    INSERT INTO schedules_v2 SELECT id, 'proj_local', type, task_id, cron, timezone, active, deduplication_key,
        external_id, missed_policy, next_run_at, last_run_at, created_at, updated_at FROM schedules;
    DROP TABLE schedules;
    ALTER TABLE schedules_v2 RENAME TO schedules;
    CREATE INDEX schedules_due ON schedules(next_run_at) WHERE active = 1 AND next_run_at IS NOT NULL;
    CREATE INDEX schedules_created ON schedules(created_at, id);
    """,  # noqa: E501 - a shipped migration is never edited
    # the project's trigger.toml defaults ([retry], machine, max_duration) travel with each
    # version, so a run's retry policy comes from its own version's project (issue #10)
    """
    ALTER TABLE versions ADD COLUMN defaults TEXT NOT NULL DEFAULT '{}';
    """,
    # realtime streams (issue #16): a row per (run, key) with its length; chunks by index
    """
    CREATE TABLE streams (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, length INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (run_id, key));
    CREATE INDEX streams_updated ON streams(updated_at);
    CREATE TABLE stream_chunks (stream_id INTEGER NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL, at REAL NOT NULL, client_id TEXT, client_idx INTEGER, PRIMARY KEY (stream_id, idx)) WITHOUT ROWID;
    CREATE INDEX stream_chunks_client ON stream_chunks(stream_id, client_id, client_idx) WHERE client_id IS NOT NULL;
    """,  # noqa: E501 - one statement a line keeps this list short
]
MIGRATIONS.extend(LATER_MIGRATIONS)  # this module reached 400 lines: newer ones live there
