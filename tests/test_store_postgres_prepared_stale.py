"""A statement the connection prepared that no longer fits the database — a migration run while
the daemon runs changed a column's type or a function under it (`trigger-local migrate` refuses
only across the dequeue-turn migration), or the statement is gone — makes the commit that
executes it fail. The connection then prepares its statements again, and the engine runs the
transaction again (TransactionRetryError): sent as text, these writes never failed, and on the
old code every later commit on the connection failed the same way until the daemon restarted.
A statement that fails again once prepared afresh raises its error (no retry loop). The names
given up (perhaps prepared, held by the server until the connection closes) count towards the
connection's limit. On a real server (store/postgres/prepared.py)."""

from __future__ import annotations

import asyncpg
import pytest
from pg_cluster import Cluster

from tests.store_support import T0, pg_store_and_admin, write_run
from trigger_local.errors import TransactionRetryError
from trigger_local.store.models import Attempt
from trigger_local.store.postgres import PostgresStore, prepared

#: what a migration might do under a running daemon, to a table or a function a kept write names
CHANGES = {
    # the request cache's INSERT was prepared with its value typed as text (42804 after this)
    "column_type": "ALTER TABLE request_cache ALTER COLUMN response TYPE jsonb "
                   "USING response::jsonb",
    # the counters' call returns another type ("cached plan must not change result type")
    "function": "DROP FUNCTION runs_add_counts; CREATE FUNCTION runs_add_counts(TEXT[], "
                "BIGINT[], TEXT[], TEXT[], TEXT[], BIGINT[]) RETURNS INT LANGUAGE sql "
                "AS 'SELECT 1'",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_statement_changed_under_the_connection_is_prepared_again(
        pg_cluster: Cluster, change: str) -> None:
    async with pg_store_and_admin(pg_cluster.fresh_url()) as (store, admin):
        await write_run(store, 1)
        await write_run(store, 2)  # executed by name
        await admin.execute(CHANGES[change])
        with pytest.raises(TransactionRetryError):  # nothing of it committed: run again
            await write_run(store, 3)
        await write_run(store, 3)
        await write_run(store, 4)
        reader = store.read()
        found = await reader.runs.get_many([f"run_{n}" for n in range(1, 5)])
        assert len(found) == 4
        assert [e.data["n"] for e in await reader.events.after(0)] == [1, 2, 3, 4]
        assert await reader.requests.get("key_4", 0) == {"n": 4}


async def test_a_statement_that_fails_prepared_afresh_raises(pg_cluster: Cluster) -> None:
    async with pg_store_and_admin(pg_cluster.fresh_url()) as (store, admin):
        await write_run(store, 1)
        await write_run(store, 2)
        await admin.execute("ALTER TABLE request_cache DROP COLUMN response")
        with pytest.raises(TransactionRetryError):
            await write_run(store, 3)
        with pytest.raises(asyncpg.UndefinedColumnError):
            await write_run(store, 3)
        assert await store.read().runs.get("run_3") is None


async def test_names_given_up_count_towards_the_limit(pg_cluster: Cluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A round trip that fails may have prepared its new statements (those before the error
    ran): their names are never used again, but the server keeps them until the connection
    closes. They count towards `prepared.LIMIT`, which so bounds what the server holds."""
    monkeypatch.setattr(prepared, "LIMIT", 20)
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    try:
        await write_run(store, 1)
        for _ in range(30):  # a new statement's round trip fails after its PREPARE, each time
            with pytest.raises(asyncpg.UniqueViolationError):
                async with store.tx() as tx:
                    await tx.attempts.insert(Attempt("attempt_1", "run_1", 1, "EXECUTING", T0))
                    await tx.attempts.insert(Attempt("attempt_1", "run_1", 1, "EXECUTING", T0))
        await write_run(store, 2)
        conn = store._conns[False].conn
        held = await conn.fetchval("SELECT count(*) FROM pg_prepared_statements "
                                   "WHERE name LIKE 'trigger_local_%'")
        assert held <= 20
        assert len(await store.read().runs.get_many(["run_1", "run_2"])) == 2
    finally:
        await store.close()
