"""Migration 13 (issue #17), in a module of its own (schema_later.py lists it): a million runs.

Every runs-list filter reads one index in the list's order
(created_at, id), so a page costs its 25 rows, not a sort of every match; tags get a
table of their own, kept by triggers (written with the run, so also at trigger time);
counts per status are counters the same triggers keep in the writing transaction, so
`status` reads a handful of rows, and so are the queued and running runs per queue (the
queue list); retention finds finished runs by completed_at, and an
offloaded payload by its packet name. Never edit it once shipped: add a migration."""

from __future__ import annotations

LISTS_AND_RETENTION = """
    CREATE INDEX runs_status_created ON runs(status, created_at, id);
    CREATE INDEX runs_task_created ON runs(task_id, created_at, id);
    CREATE INDEX runs_queue_created ON runs(queue, created_at, id);
    CREATE INDEX runs_version_created ON runs(version_id, created_at, id)
        WHERE version_id IS NOT NULL;
    CREATE INDEX runs_key_created ON runs(idempotency_key, created_at, id)
        WHERE idempotency_key IS NOT NULL;
    DROP INDEX runs_batch;
    CREATE INDEX runs_batch_created ON runs(batch_id, created_at, id) WHERE batch_id IS NOT NULL;
    DROP INDEX runs_parent;
    CREATE INDEX runs_parent_created ON runs(parent_run_id, created_at, id)
        WHERE parent_run_id IS NOT NULL;
    DROP INDEX runs_schedule;
    CREATE INDEX runs_schedule_created ON runs(schedule_id, created_at, id)
        WHERE schedule_id IS NOT NULL;
    CREATE INDEX runs_finished ON runs(completed_at, id) WHERE completed_at IS NOT NULL;
    CREATE INDEX runs_packet ON runs(payload) WHERE payload_type = 'application/store';
    CREATE INDEX runs_worker ON runs(worker_id) WHERE worker_id IS NOT NULL;
    CREATE TABLE run_tags (
        tag TEXT NOT NULL,
        run_created_at REAL NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (tag, run_created_at, run_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO run_tags (tag, run_created_at, run_id)
        SELECT j.value, r.created_at, r.id FROM runs r, json_each(r.tags) j WHERE r.tags <> '[]';
    CREATE TRIGGER runs_tags_insert AFTER INSERT ON runs WHEN new.tags <> '[]' BEGIN
        INSERT OR IGNORE INTO run_tags (tag, run_created_at, run_id)
            SELECT value, new.created_at, new.id FROM json_each(new.tags);
    END;
    CREATE TRIGGER runs_tags_update AFTER UPDATE OF tags, created_at ON runs BEGIN
        DELETE FROM run_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND run_created_at = old.created_at AND run_id = old.id;
        INSERT OR IGNORE INTO run_tags (tag, run_created_at, run_id)
            SELECT value, new.created_at, new.id FROM json_each(new.tags);
    END;
    CREATE TRIGGER runs_tags_delete AFTER DELETE ON runs WHEN old.tags <> '[]' BEGIN
        DELETE FROM run_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND run_created_at = old.created_at AND run_id = old.id;
    END;
    CREATE TABLE run_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO run_counts (status, n) SELECT status, COUNT(*) FROM runs GROUP BY status;
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
    CREATE TABLE waitpoint_tags (
        tag TEXT NOT NULL,
        waitpoint_created_at REAL NOT NULL,
        waitpoint_id TEXT NOT NULL,
        PRIMARY KEY (tag, waitpoint_created_at, waitpoint_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO waitpoint_tags (tag, waitpoint_created_at, waitpoint_id)
        SELECT j.value, w.created_at, w.id FROM waitpoints w, json_each(w.tags) j
        WHERE w.tags <> '[]';
    CREATE TRIGGER waitpoints_tags_insert AFTER INSERT ON waitpoints WHEN new.tags <> '[]' BEGIN
        INSERT OR IGNORE INTO waitpoint_tags (tag, waitpoint_created_at, waitpoint_id)
            SELECT value, new.created_at, new.id FROM json_each(new.tags);
    END;
    CREATE TRIGGER waitpoints_tags_update AFTER UPDATE OF tags, created_at ON waitpoints BEGIN
        DELETE FROM waitpoint_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND waitpoint_created_at = old.created_at AND waitpoint_id = old.id;
        INSERT OR IGNORE INTO waitpoint_tags (tag, waitpoint_created_at, waitpoint_id)
            SELECT value, new.created_at, new.id FROM json_each(new.tags);
    END;
    CREATE TRIGGER waitpoints_tags_delete AFTER DELETE ON waitpoints WHEN old.tags <> '[]' BEGIN
        DELETE FROM waitpoint_tags WHERE tag IN (SELECT value FROM json_each(old.tags))
            AND waitpoint_created_at = old.created_at AND waitpoint_id = old.id;
    END;
    CREATE TABLE queue_counts (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project, queue, status)
    ) WITHOUT ROWID;
    INSERT INTO queue_counts (project, queue, status, n)
        SELECT COALESCE(project, ''), queue, status, COUNT(*) FROM runs
        WHERE status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') GROUP BY 1, 2, 3;
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
    CREATE INDEX waitpoints_type_status ON waitpoints(type, status, created_at, id);
    CREATE INDEX waitpoints_type_created ON waitpoints(type, created_at, id);
    DROP INDEX waitpoints_type;
    """
