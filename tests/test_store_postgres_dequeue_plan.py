"""The dequeue's first reads, in the functions that make them (store/postgres/sql.py's
LOCKED_READ, start_reads.py's START_READ), are planned without bitmap scans
(dequeue_reads.PLAN): every run that ran leaves a dead entry of its old row version in the index
the running counts are read through, until vacuum, and a bitmap scan — the planner's choice
while the table is not analysed — visits the heap for each at every read, where a plain index
scan marks them dead once. The functions' plans are read with auto_explain on a real server."""

from __future__ import annotations

from typing import Any

import asyncpg
from pg_cluster import Cluster

from tests.store_support import make_run
from trigger_local.store.models import EXECUTING
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.sql import LOCKED_READ
from trigger_local.store.postgres.start_reads import START_READ

RUNS = 2000


async def plans_of(url: str, setup: str, call: str, isolation: str) -> list[str]:
    """The plans of every statement `call` runs (auto_explain, its nested statements too)."""
    conn = await asyncpg.connect(url)
    plans: list[str] = []

    def heard(_conn: Any, message: Any) -> None:
        plans.append(str(message.message))
    try:
        await conn.execute(setup)
        await conn.execute("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                           "SET auto_explain.log_nested_statements = on; "
                           "SET auto_explain.log_level = notice; "
                           "SET client_min_messages = notice")
        conn.add_log_listener(heard)
        async with conn.transaction(isolation=isolation):
            await conn.fetchval(call)
        conn.remove_log_listener(heard)
    finally:
        await conn.close()
    return plans


async def test_the_dequeue_reads_skip_the_dead_entries_of_runs_that_ran(
        pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    try:
        async with store.tx() as tx:
            await tx.runs.insert_many([make_run(f"run_{n:05d}", status=EXECUTING,
                                                project="proj", queue="task/hello")
                                       for n in range(RUNS)])
        async with store.tx() as tx:  # each leaves a dead entry behind in runs_queued
            await tx.sql.run("UPDATE runs SET status = 'COMPLETED'")  # type: ignore[attr-defined]
    finally:
        await store.close()
    for setup, call, isolation in (
            (LOCKED_READ, "SELECT pg_temp.trigger_local_locked_read()", "read_committed"),
            (START_READ, "SELECT pg_temp.trigger_local_start_read('proj', 'task/hello')",
             "serializable")):
        plans = await plans_of(url, setup, call, isolation)
        running = [p for p in plans if "COUNT(*)" in p and "GROUP BY" in p]
        assert running, plans
        assert not [p for p in running if "Bitmap" in p], running
