"""Migration 7 (issue #14): the lists' tables and counters, as SQLite's migration 13 has them
(store/sqlite/schema_lists.py), kept by triggers in the writing transaction.

- `run_tags` / `waitpoint_tags`: one row per tag, so a tag filter reads the rows carrying the
  tag instead of parsing every row's JSON;
- `run_counts` (per status) and `queue_counts` (queued and running runs per queue): `status`
  and the queue list read a handful of rows instead of counting the runs table.

Counters are where several daemons' transactions would meet: every run that changes status
changes one. So each counter is split in shards, and a transaction counts into the shard of its
server process (migration 7: `pg_backend_pid() % 16`; migration 9: the process id itself): two
daemons' transactions (two connections) write different rows and do not refuse each other
(serializable isolation, store.py), and a count is the sum of its shards (a shard may go
negative: a run counted in on one connection and out on another). Since migration 9 the store
counts inserts and status changes with each commit (counts.py); a trigger counts deletions.
Never edit a migration once shipped: add one."""

from __future__ import annotations

SHARDS = 16


def _tags(owner: str, table: str) -> str:
    """`table`'s tags table (`{owner}_tags`), filled from the rows there are, and the trigger
    that keeps it in step with each row's `tags`."""
    return f"""
    CREATE TABLE {owner}_tags (
        tag TEXT NOT NULL,
        {owner}_created_at DOUBLE PRECISION NOT NULL,
        {owner}_id TEXT NOT NULL,
        PRIMARY KEY (tag, {owner}_created_at, {owner}_id)
    );
    INSERT INTO {owner}_tags (tag, {owner}_created_at, {owner}_id)
        SELECT DISTINCT t.v, x.created_at, x.id
        FROM {table} x, jsonb_array_elements_text(x.tags::jsonb) AS t(v) WHERE x.tags <> '[]';
    CREATE FUNCTION {table}_keep_tags() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.tags <> '[]' THEN
            DELETE FROM {owner}_tags
                WHERE {owner}_id = OLD.id AND {owner}_created_at = OLD.created_at;
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.tags <> '[]' THEN
            INSERT INTO {owner}_tags (tag, {owner}_created_at, {owner}_id)
                SELECT DISTINCT t.v, NEW.created_at, NEW.id
                FROM jsonb_array_elements_text(NEW.tags::jsonb) AS t(v)
                ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER {table}_tags AFTER INSERT OR DELETE OR UPDATE OF tags, created_at
        ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_keep_tags();
"""


LISTS = _tags("run", "runs") + _tags("waitpoint", "waitpoints") + f"""
    CREATE TABLE run_counts (
        status TEXT NOT NULL,
        shard INTEGER NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (status, shard)
    ) WITH (fillfactor = 50);
    INSERT INTO run_counts (status, shard, n) SELECT status, 0, COUNT(*) FROM runs GROUP BY status;
    CREATE TABLE queue_counts (
        project TEXT NOT NULL,
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        shard INTEGER NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (project, queue, status, shard)
    ) WITH (fillfactor = 50);
    INSERT INTO queue_counts (project, queue, status, shard, n)
        SELECT COALESCE(project, ''), queue, status, 0, COUNT(*) FROM runs
        WHERE status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') GROUP BY 1, 2, 3;
    CREATE FUNCTION runs_count(row_ runs, delta INTEGER) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        s INTEGER := pg_backend_pid() % {SHARDS};
    BEGIN
        INSERT INTO run_counts AS c (status, shard, n) VALUES (row_.status, s, delta)
            ON CONFLICT (status, shard) DO UPDATE SET n = c.n + delta;
        IF row_.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') THEN
            INSERT INTO queue_counts AS c (project, queue, status, shard, n)
                VALUES (COALESCE(row_.project, ''), row_.queue, row_.status, s, delta)
                ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + delta;
        END IF;
    END $$;
    CREATE FUNCTION runs_keep_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM runs_count(OLD, -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM runs_count(NEW, 1);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_counts AFTER INSERT OR DELETE ON runs
        FOR EACH ROW EXECUTE FUNCTION runs_keep_counts();
    CREATE TRIGGER runs_counts_moved AFTER UPDATE OF status, queue, project ON runs
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                           OR OLD.queue IS DISTINCT FROM NEW.queue
                           OR OLD.project IS DISTINCT FROM NEW.project)
        EXECUTE FUNCTION runs_keep_counts();
"""

#: migration 9: a status change and an insert are counted by the store, once per transaction
#: with its commit (counts.py, through `runs_add_counts`: a function's statements are planned
#: once per session, a statement sent as text at every commit), no longer by triggers; a
#: deletion still is. A shard is the
#: server process's id itself, not its remainder by 16: no two connections open at once share
#: one (two daemons whose connections fell on one shard updated one row in each transaction,
#: and serializable isolation refused one of them). Rows of the shards of past connections stay
#: (a count is the sum of its shards), a handful per daemon start
COUNTED_BY_STORE = """
    DROP TRIGGER runs_counts_moved ON runs;
    DROP TRIGGER runs_counts ON runs;
    CREATE OR REPLACE FUNCTION runs_count(row_ runs, delta INTEGER) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        s INTEGER := pg_backend_pid();
    BEGIN
        INSERT INTO run_counts AS c (status, shard, n) VALUES (row_.status, s, delta)
            ON CONFLICT (status, shard) DO UPDATE SET n = c.n + delta;
        IF row_.status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') THEN
            INSERT INTO queue_counts AS c (project, queue, status, shard, n)
                VALUES (COALESCE(row_.project, ''), row_.queue, row_.status, s, delta)
                ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + delta;
        END IF;
    END $$;
    CREATE TRIGGER runs_counts AFTER DELETE ON runs
        FOR EACH ROW EXECUTE FUNCTION runs_keep_counts();
    CREATE FUNCTION runs_add_counts(statuses TEXT[], ns BIGINT[], projects TEXT[], queues TEXT[],
                                    queue_statuses TEXT[], queue_ns BIGINT[]) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO run_counts AS c (status, shard, n)
            SELECT u.s, pg_backend_pid(), u.d FROM unnest(statuses, ns) AS u(s, d)
            ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
        INSERT INTO queue_counts AS c (project, queue, status, shard, n)
            SELECT u.p, u.q, u.s, pg_backend_pid(), u.d
            FROM unnest(projects, queues, queue_statuses, queue_ns) AS u(p, q, s, d)
            ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n;
    END $$;
"""
