"""Append-only migrations of the PostgreSQL store. The version lives in `schema_version`; never
edit a migration that has shipped, add a new one.

The tables are SQLite's (store/sqlite/schema.py, as of its migration 9) in PostgreSQL's words:
times are DOUBLE PRECISION epoch seconds, integers BIGINT, booleans 0/1 integers and JSON text
(so store/sqlite/rows.py maps rows for both), and every text column is `COLLATE "C"`: ids and
names sort bytewise, as in SQLite, whatever the database's locale. Tables whose SQLite order
uses the rowid get a `seq` column instead."""

from __future__ import annotations

from . import dequeue_reads, history, packets, schema_lists


def _c(sql: str) -> str:
    return sql.replace(" TEXT", ' TEXT COLLATE "C"')


MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's migrations 1-9
    _c("""
    CREATE TABLE versions (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        project_dir TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        python TEXT NOT NULL DEFAULT '',
        dirs TEXT NOT NULL DEFAULT '[]',
        env TEXT NOT NULL DEFAULT '{}',
        project TEXT NOT NULL DEFAULT 'proj_local',
        defaults TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX versions_project ON versions(project, created_at);
    CREATE TABLE tasks (
        version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        task_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        file TEXT NOT NULL DEFAULT '',
        export_name TEXT NOT NULL DEFAULT '',
        retry TEXT,
        max_duration_s DOUBLE PRECISION,
        machine TEXT,
        schema TEXT,
        queue_concurrency_limit BIGINT,
        queue_is_custom BIGINT NOT NULL DEFAULT 0,
        schedule TEXT,
        rate_limit TEXT,
        PRIMARY KEY (version_id, task_id)
    );
    CREATE TABLE projects (
        ref TEXT PRIMARY KEY,
        project_dir TEXT NOT NULL,
        dev BIGINT NOT NULL DEFAULT 0,
        left_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE queues (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        concurrency_limit BIGINT,
        paused BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project, name)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        status TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        snapshot_kind TEXT NOT NULL,
        queue TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        queued_at DOUBLE PRECISION NOT NULL,
        payload TEXT,
        payload_type TEXT NOT NULL,
        output TEXT,
        output_type TEXT,
        error TEXT,
        version_id TEXT,
        concurrency_key TEXT,
        delay_until DOUBLE PRECISION,
        expires_at DOUBLE PRECISION,
        started_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        idempotency_key TEXT,
        idempotency_key_user TEXT,
        idempotency_expires_at DOUBLE PRECISION,
        tags TEXT NOT NULL DEFAULT '[]',
        max_attempts BIGINT,
        max_duration_s DOUBLE PRECISION,
        priority DOUBLE PRECISION NOT NULL DEFAULT 0,
        machine TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        attempt_count BIGINT NOT NULL DEFAULT 0,
        parent_run_id TEXT,
        root_run_id TEXT,
        batch_id TEXT,
        resume_parent BIGINT NOT NULL DEFAULT 0,
        worker_id TEXT,
        deadline_at DOUBLE PRECISION,
        executed_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        waitpoint_id TEXT,
        is_test BIGINT NOT NULL DEFAULT 0,
        depth BIGINT NOT NULL DEFAULT 0,
        schedule_id TEXT,
        project TEXT
    );
    CREATE INDEX runs_queued ON runs(status, project, queue, queued_at);
    CREATE INDEX runs_delay ON runs(delay_until) WHERE delay_until IS NOT NULL;
    CREATE INDEX runs_expires ON runs(expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX runs_deadline ON runs(deadline_at) WHERE deadline_at IS NOT NULL;
    CREATE INDEX runs_idempotency ON runs(task_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_created ON runs(created_at, id);
    CREATE INDEX runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL;
    CREATE INDEX runs_batch_status ON runs(batch_id, status) WHERE batch_id IS NOT NULL;
    CREATE INDEX runs_schedule ON runs(schedule_id, created_at) WHERE schedule_id IS NOT NULL;
    CREATE INDEX runs_project ON runs(project, created_at, id);
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX snapshots_run ON snapshots(run_id, at);
    CREATE TABLE attempts (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        number BIGINT NOT NULL,
        status TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        worker_id TEXT,
        pid BIGINT,
        executor TEXT NOT NULL DEFAULT 'process',
        finished_at DOUBLE PRECISION,
        error TEXT,
        counts BIGINT NOT NULL DEFAULT 1
    );
    CREATE INDEX attempts_run ON attempts(run_id, number);
    CREATE INDEX attempts_open ON attempts(status) WHERE status = 'EXECUTING';
    CREATE TABLE waitpoints (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        completed_at DOUBLE PRECISION,
        complete_after DOUBLE PRECISION,
        timeout_at DOUBLE PRECISION,
        output TEXT,
        output_type TEXT NOT NULL DEFAULT 'application/json',
        output_is_error BIGINT NOT NULL DEFAULT 0,
        idempotency_key TEXT,
        idempotency_expires_at DOUBLE PRECISION,
        tags TEXT NOT NULL DEFAULT '[]',
        owner_run_id TEXT,
        batch_id TEXT,
        created_by_run_id TEXT
    );
    CREATE INDEX waitpoints_after ON waitpoints(complete_after)
        WHERE status = 'WAITING' AND complete_after IS NOT NULL;
    CREATE INDEX waitpoints_timeout ON waitpoints(timeout_at)
        WHERE status = 'WAITING' AND timeout_at IS NOT NULL;
    CREATE INDEX waitpoints_key ON waitpoints(idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX waitpoints_type ON waitpoints(type, created_at);
    CREATE TABLE run_waitpoints (
        run_id TEXT NOT NULL,
        waitpoint_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, waitpoint_id)
    );
    CREATE INDEX run_waitpoints_wp ON run_waitpoints(waitpoint_id);
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        run_count BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
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
        pid BIGINT,
        started_at DOUBLE PRECISION NOT NULL,
        executor TEXT NOT NULL DEFAULT 'process'
    );
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        run_id TEXT,
        type TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_run ON events(run_id, seq);
    CREATE INDEX events_waited_on ON events(((data::jsonb) ->> 'waitpoint_id'))
        WHERE type = 'run.waiting';
    CREATE TABLE logs (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        attempt BIGINT,
        at DOUBLE PRECISION NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        kind TEXT NOT NULL DEFAULT 'log',
        span_id TEXT,
        parent_span_id TEXT,
        ended_at DOUBLE PRECISION
    );
    CREATE INDEX logs_run ON logs(run_id, id);
    CREATE TABLE request_cache (
        key TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL,
        response TEXT NOT NULL
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        type TEXT NOT NULL,
        task_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        active BIGINT NOT NULL DEFAULT 1,
        deduplication_key TEXT,
        external_id TEXT,
        missed_policy TEXT NOT NULL DEFAULT 'latest',
        next_run_at DOUBLE PRECISION,
        last_run_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (project, deduplication_key)
    );
    CREATE INDEX schedules_due ON schedules(next_run_at)
        WHERE active = 1 AND next_run_at IS NOT NULL;
    CREATE INDEX schedules_created ON schedules(created_at, id);
    CREATE TABLE rate_limits (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        limit_n BIGINT NOT NULL,
        period_s DOUBLE PRECISION NOT NULL,
        per_key BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (project, queue)
    );
    CREATE TABLE rate_state (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        ckey TEXT NOT NULL,
        tat DOUBLE PRECISION NOT NULL,
        blocked_until DOUBLE PRECISION,
        PRIMARY KEY (project, queue, ckey)
    );
    CREATE TABLE debounces (
        project TEXT NOT NULL,
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        first_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project, task_id, key)
    );
    CREATE TABLE checkpoints (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        worker_id TEXT NOT NULL,
        pid BIGINT NOT NULL,
        executor TEXT NOT NULL DEFAULT 'process',
        path TEXT NOT NULL,
        status TEXT NOT NULL,
        size_bytes BIGINT NOT NULL DEFAULT 0,
        dump_ms DOUBLE PRECISION,
        restore_ms DOUBLE PRECISION,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        restored_at DOUBLE PRECISION
    );
    CREATE INDEX checkpoints_run ON checkpoints(run_id, created_at);
    CREATE INDEX checkpoints_active ON checkpoints(status) WHERE status = 'active';
    CREATE TABLE env_vars (
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        is_secret BIGINT NOT NULL DEFAULT 0,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (env, name)
    );
    """),
    # 2: several daemons on one database (docs/scaling.md). Each daemon heartbeats its row; a
    # run, a task process and a checkpoint carry the daemon that holds them, so a held run is
    # resumed only where its process is, and another daemon takes it over once that daemon's
    # heartbeat is older than the lease
    _c("""
    CREATE TABLE daemons (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        url TEXT NOT NULL,
        executor TEXT NOT NULL,
        pid BIGINT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );
    ALTER TABLE runs ADD COLUMN daemon_id TEXT;
    CREATE INDEX runs_daemon ON runs(daemon_id, status) WHERE daemon_id IS NOT NULL;
    ALTER TABLE workers ADD COLUMN daemon_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE checkpoints ADD COLUMN daemon_id TEXT NOT NULL DEFAULT '';
    """),
    # 3: SQLite's migrations 10-12: realtime streams (issue #16), a run's durable records
    # (issue #12) and the dispatcher's partial indexes (issue #17)
    _c("""
    CREATE TABLE streams (id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL,
        length BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, UNIQUE (run_id, key));
    CREATE INDEX streams_updated ON streams(updated_at);
    CREATE TABLE stream_chunks (stream_id BIGINT NOT NULL, idx BIGINT NOT NULL,
        data TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, client_id TEXT, client_idx BIGINT,
        PRIMARY KEY (stream_id, idx));
    CREATE INDEX stream_chunks_client ON stream_chunks(stream_id, client_id, client_idx)
        WHERE client_id IS NOT NULL;
    CREATE TABLE run_steps (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT,
        status TEXT NOT NULL,
        result TEXT,
        result_type TEXT NOT NULL DEFAULT 'application/json',
        waitpoint_id TEXT,
        child_run_id TEXT,
        batch_id TEXT,
        attempt BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        completed_at DOUBLE PRECISION,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX runs_ready ON runs(project, queue, queued_at, id) WHERE status = 'QUEUED';
    """),
    history.MIGRATION,  # 4: retention, compaction, start-up (issue #17)
    # 5: runs of an async task share task processes (issue #13)
    "ALTER TABLE tasks ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;",
    history.PROJECTS_MIGRATION,  # 6: projects own tokens, batches, env vars; interruptions
    schema_lists.LISTS,  # 7: tags tables and sharded counters for the lists (issue #14)
    # 8: the batches still PROCESSING, which the daemons' sweep looks through (waitpoints.py)
    "CREATE INDEX batches_processing ON batches(created_at) WHERE status = 'PROCESSING';",
    # 9: the counters counted by the store with each commit, a shard per connection (#14)
    schema_lists.COUNTED_BY_STORE,
    # 10: the dequeues' turn (store.py): a table never written, only locked — a lock that a
    # serializable transaction can take before its snapshot, which an advisory lock cannot
    "CREATE TABLE dequeue_turn (only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row));",
    # 11: the request keys' answers in the order retention forgets them (engine/retention.py)
    "CREATE INDEX request_cache_created ON request_cache(created_at);",
    # 12: the executing attempts' index had no reader left (attempts.open is gone)
    "DROP INDEX attempts_open;",
    # 13: each attempt's logs against their cap (engine/log_cap.py; SQLite's 23)
    """
    CREATE TABLE log_usage (
        run_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        stored_lines BIGINT NOT NULL,
        stored_bytes BIGINT NOT NULL,
        dropped_lines BIGINT NOT NULL,
        dropped_bytes BIGINT NOT NULL,
        marked BIGINT NOT NULL,
        PRIMARY KEY (run_id, attempt)
    );
    """,
    packets.MIGRATION,  # 14: packets every daemon of the database reads (packets.py)
    dequeue_reads.CATALOG_MIGRATION,  # 15: the catalog's generation, read by every dequeue
]
