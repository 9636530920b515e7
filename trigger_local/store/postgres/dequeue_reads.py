"""The reads every dequeue starts with (engine/dequeue.py: what runs, which queues are paused or
limited, the rate limits, which queues have queued runs, the catalog's generation), sent as one
statement.

A dequeue is the exclusive transaction (store.py): it waits for its advisory lock, then reads
these one after another, each a round trip on PostgreSQL — and the dispatcher runs one after
every trigger, start and completion, most of them finding nothing to do. So the first of these
reads in an exclusive transaction fetches all of them at once, each as a JSON array of its rows,
and the others are answered from that (once each: a second asking reads the database again).
Reading them together rather than in quick succession changes nothing the dequeue relies on:
under its lock, the running counts can only have gone down meanwhile (store.py)."""

from __future__ import annotations

import json
from typing import Any

from ..sqlite.sql import SQL_RUNNING

RUNNING = ("SELECT project, queue, concurrency_key, COUNT(*) AS n FROM runs "
           f"WHERE status IN {SQL_RUNNING} GROUP BY project, queue, concurrency_key")
PAUSED = "SELECT project, name FROM queues WHERE paused = 1"
LIMITS = "SELECT project, name, concurrency_limit FROM queues WHERE concurrency_limit IS NOT NULL"
RATE_LIMITS = "SELECT * FROM rate_limits "
QUEUED_QUEUES = "SELECT DISTINCT project, queue FROM runs WHERE status = 'QUEUED'"
#: the catalog's generation: one more at each statement that writes `versions`
#: (CATALOG_MIGRATION's trigger). A dequeue that finds it past the one its daemon's cache of
#: projects was read at takes nothing and has the cache read again (engine/dequeue.py)
CATALOG = "SELECT n FROM catalog_generation"

READS = (RUNNING, PAUSED, LIMITS, RATE_LIMITS, QUEUED_QUEUES, CATALOG)

#: schema.MIGRATIONS (15): the generation, counted by the database itself (whichever daemon,
#: or tool, writes a version)
CATALOG_MIGRATION = """
CREATE TABLE catalog_generation (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    n BIGINT NOT NULL
);
INSERT INTO catalog_generation (n) VALUES (0);
CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET n = n + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER versions_catalog AFTER INSERT OR UPDATE OR DELETE ON versions
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed();
"""
#: how the functions that make these reads (sql.py's LOCKED_READ, start_reads.py's START_READ)
#: plan them: without bitmap scans. A run's every status change leaves an index entry of its
#: old row version behind until vacuum (a status is indexed: no change of it is HOT), so the
#: index `RUNNING` reads holds one dead entry per run that ran since. A bitmap scan (the
#: planner's choice until the table is analysed) visits the heap for each of them at every
#: read; a plain index scan marks them dead as it passes and skips them from then on (1,100
#: runs done: the trigger's start read 157 us of server CPU, 85 without bitmap scans)
PLAN = "SET enable_bitmapscan = off"

_ARRAYS = [f"(SELECT COALESCE(json_agg(r), '[]') FROM ({sql}) AS r)" for sql in READS]
#: one statement: each read's rows as a JSON array
TOGETHER = "SELECT " + ", ".join(f"{a}::text AS r{n}" for n, a in enumerate(_ARRAYS))
#: the same as one JSON object, whose arrays are JSON too (not text inside JSON): decoded once
#: (sql.py `_dequeue_read`); `FIELDS` are its keys and values (start_reads.py adds one)
FIELDS = ", ".join(f"'r{n}', {a}" for n, a in enumerate(_ARRAYS))
AS_JSON = f"SELECT json_build_object({FIELDS})::text"


def answers(row: Any) -> dict[str, list[dict[str, Any]]]:
    """Each read's rows (as dicts: the areas read them by column name), by its text, from
    `TOGETHER`'s row."""
    return {sql: json.loads(row[f"r{n}"]) for n, sql in enumerate(READS)}


def answers_of(found: str | dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The same from `AS_JSON`'s text (or that text decoded)."""
    decoded: dict[str, Any] = json.loads(found) if isinstance(found, str) else found
    return {sql: decoded[f"r{n}"] for n, sql in enumerate(READS)}
