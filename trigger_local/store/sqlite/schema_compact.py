"""Migration 18 (issue #17): the runs table rebuilt for fewer bytes per finished run.

- `runs` gets an INTEGER PRIMARY KEY, `seq` (the rowid, in trigger order), and the public
  `run_…` id one unique index. Every index on a rowid table ends with the rowid, so the list
  indexes become `(column, created_at)` and order ties by `seq`: before, each of them also held
  the run's 25-byte id. `seq` is declared (not the implicit rowid) because VACUUM may renumber
  an implicit rowid, and `attempts` and `run_tags` keep it.
- `attempts` is keyed by (run seq, number), WITHOUT ROWID: its random id and the index on it
  go (an attempt's id is derived from its run's and its number, ids.attempt_id).
- Values most runs share are not stored: a NULL `payload_type` is `application/json`, a NULL
  `tags` is `[]`, a NULL `metadata` is `{}`, and an attempt's NULL `executor` is `process`
  (rows.py maps them both ways).

The tables are copied at once, in the migration's transaction (100k runs: docs/architecture.md
says how long). Never edit it once shipped: add a migration."""

from __future__ import annotations

from .sql import SQL_LIVE, SQL_NOT_STARTED, SQL_RUNNING

_COLUMNS = """id, task_id, status, snapshot_id, snapshot_kind, queue, created_at, updated_at,
        queued_at, payload, payload_type, output, output_type, error, version_id,
        concurrency_key, delay_until, expires_at, started_at, completed_at, idempotency_key,
        idempotency_key_user, idempotency_expires_at, tags, max_attempts, max_duration_s,
        priority, machine, metadata, attempt_count, parent_run_id, root_run_id, batch_id,
        resume_parent, worker_id, deadline_at, executed_s, waitpoint_id, is_test, depth,
        schedule_id, project, interrupted_count"""
_STORED = _COLUMNS.replace("payload_type,", "NULLIF(payload_type, 'application/json'),") \
    .replace(" tags,", " NULLIF(tags, '[]'),").replace("metadata,", "NULLIF(metadata, '{}'),")

COMPACT_RUNS = f"""
    CREATE TABLE runs_v2 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        task_id TEXT NOT NULL,
        status TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        snapshot_kind TEXT NOT NULL,
        queue TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        queued_at REAL NOT NULL,
        payload TEXT,
        payload_type TEXT,
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
        tags TEXT,
        max_attempts INTEGER,
        max_duration_s REAL,
        priority REAL NOT NULL DEFAULT 0,
        machine TEXT,
        metadata TEXT,
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
        depth INTEGER NOT NULL DEFAULT 0,
        schedule_id TEXT,
        project TEXT,
        interrupted_count INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO runs_v2 ({_COLUMNS})
        SELECT {_STORED} FROM runs ORDER BY created_at, id;
    CREATE TABLE attempts_v2 (
        run_seq INTEGER NOT NULL,
        number INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        worker_id TEXT,
        pid INTEGER,
        executor TEXT,
        finished_at REAL,
        error TEXT,
        counts INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (run_seq, number)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO attempts_v2 (run_seq, number, status, started_at, worker_id, pid,
                                       executor, finished_at, error, counts)
        SELECT r.seq, a.number, a.status, a.started_at, a.worker_id, a.pid,
               NULLIF(a.executor, 'process'), a.finished_at, a.error, a.counts
        FROM attempts a JOIN runs_v2 r ON r.id = a.run_id;
    CREATE TABLE run_tags_v2 (
        tag TEXT NOT NULL,
        run_created_at REAL NOT NULL,
        run_seq INTEGER NOT NULL,
        PRIMARY KEY (tag, run_created_at, run_seq)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO run_tags_v2 (tag, run_created_at, run_seq)
        SELECT j.value, r.created_at, r.seq FROM runs_v2 r, json_each(r.tags) j
        WHERE r.tags IS NOT NULL;
    DROP TABLE attempts;
    DROP TABLE run_tags;
    DROP TABLE runs;
    ALTER TABLE runs_v2 RENAME TO runs;
    ALTER TABLE attempts_v2 RENAME TO attempts;
    ALTER TABLE run_tags_v2 RENAME TO run_tags;
    -- attempts.open: the executing ones only
    CREATE INDEX attempts_open ON attempts(run_seq) WHERE status = 'EXECUTING';
    -- the dispatcher's and the timers' (partial: live runs only)
    CREATE INDEX runs_ready ON runs(project, queue, queued_at, id) WHERE status = 'QUEUED';
    CREATE INDEX runs_holding ON runs(project, queue, concurrency_key)
        WHERE status IN {SQL_RUNNING};
    CREATE INDEX runs_due_delay ON runs(delay_until) WHERE status = 'DELAYED';
    CREATE INDEX runs_due_ttl ON runs(expires_at)
        WHERE status IN {SQL_NOT_STARTED} AND expires_at IS NOT NULL;
    CREATE INDEX runs_due_deadline ON runs(deadline_at)
        WHERE status IN {SQL_RUNNING} AND deadline_at IS NOT NULL;
    CREATE INDEX runs_batch_live ON runs(batch_id)
        WHERE batch_id IS NOT NULL AND status IN {SQL_LIVE};
    CREATE INDEX runs_idempotency ON runs(task_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_packet ON runs(payload) WHERE payload_type = 'application/store';
    CREATE INDEX runs_worker ON runs(worker_id) WHERE worker_id IS NOT NULL;
    -- the lists' (run_pages.py): each ends with the rowid, `seq`, the ties' order
    CREATE INDEX runs_created ON runs(created_at);
    CREATE INDEX runs_status_created ON runs(status, created_at);
    CREATE INDEX runs_task_created ON runs(task_id, created_at);
    CREATE INDEX runs_queue_created ON runs(queue, created_at);
    CREATE INDEX runs_project ON runs(project, created_at);
    CREATE INDEX runs_version_created ON runs(version_id, created_at)
        WHERE version_id IS NOT NULL;
    CREATE INDEX runs_key_created ON runs(idempotency_key, created_at)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_batch_created ON runs(batch_id, created_at) WHERE batch_id IS NOT NULL;
    CREATE INDEX runs_parent_created ON runs(parent_run_id, created_at)
        WHERE parent_run_id IS NOT NULL;
    CREATE INDEX runs_schedule_created ON runs(schedule_id, created_at)
        WHERE schedule_id IS NOT NULL;
    -- retention's (engine/retention.py)
    CREATE INDEX runs_finished ON runs(completed_at) WHERE completed_at IS NOT NULL;
    -- the counters and the tags, as migration 13 keeps them (schema_lists.py), by `seq`
    CREATE TRIGGER runs_tags_insert AFTER INSERT ON runs WHEN new.tags IS NOT NULL BEGIN
        INSERT OR IGNORE INTO run_tags (tag, run_created_at, run_seq)
            SELECT value, new.created_at, new.seq FROM json_each(new.tags);
    END;
    CREATE TRIGGER runs_tags_update AFTER UPDATE OF tags, created_at ON runs BEGIN
        DELETE FROM run_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND run_created_at = old.created_at AND run_seq = old.seq;
        INSERT OR IGNORE INTO run_tags (tag, run_created_at, run_seq)
            SELECT value, new.created_at, new.seq FROM json_each(new.tags);
    END;
    CREATE TRIGGER runs_tags_delete AFTER DELETE ON runs WHEN old.tags IS NOT NULL BEGIN
        DELETE FROM run_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND run_created_at = old.created_at AND run_seq = old.seq;
    END;
    CREATE TRIGGER runs_count_insert AFTER INSERT ON runs BEGIN
        INSERT INTO run_counts (status, n) VALUES (new.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER runs_count_update AFTER UPDATE OF status ON runs
        WHEN old.status IS NOT new.status BEGIN
        UPDATE run_counts SET n = n - 1 WHERE status = old.status;
        INSERT INTO run_counts (status, n) VALUES (new.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER runs_count_delete AFTER DELETE ON runs BEGIN
        UPDATE run_counts SET n = n - 1 WHERE status = old.status;
    END;
    CREATE TRIGGER runs_queue_count_insert AFTER INSERT ON runs
        WHEN new.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') BEGIN
        INSERT INTO queue_counts (project, queue, status, n)
            VALUES (COALESCE(new.project, ''), new.queue, new.status, 1)
            ON CONFLICT (project, queue, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER runs_queue_count_update AFTER UPDATE OF status, queue, project ON runs
        WHEN old.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING')
          OR new.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE project = COALESCE(old.project, '')
            AND queue = old.queue AND status = old.status;
        INSERT INTO queue_counts (project, queue, status, n)
            SELECT COALESCE(new.project, ''), new.queue, new.status, 1
            WHERE new.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING')
            ON CONFLICT (project, queue, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER runs_queue_count_delete AFTER DELETE ON runs
        WHEN old.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE project = COALESCE(old.project, '')
            AND queue = old.queue AND status = old.status;
    END;
    """
