"""What the PostgreSQL store does beyond the contract (tests/test_store_contract.py runs that on
both backends): its schema version and migrations, a read side that cannot write, one
transaction at a time across several stores (daemons) on one database, and clear errors."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from pg_cluster import Cluster, require_postgres
from store_support import T0, insert_runs, make_run

from trigger_local.errors import DatabaseUnavailableError, StartupError
from trigger_local.store.postgres import PostgresStore, dequeue_reads
from trigger_local.store.postgres.daemons import CHANNEL
from trigger_local.store.postgres.schema import MIGRATIONS
from trigger_local.store.postgres.store import migrate, redact


async def test_reopen_is_idempotent_keeps_data_and_records_the_version(
        pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    await insert_runs(store, make_run("run_a"))
    await store.close()
    for _ in range(2):
        reopened = PostgresStore(url)
        await reopened.open()
        assert await reopened.read().runs.get("run_a") is not None
        await reopened.close()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT version FROM schema_version") == len(MIGRATIONS)
    finally:
        await conn.close()


async def test_two_daemons_starting_together_migrate_once(pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    stores = [PostgresStore(url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()


async def test_without_migrate_an_empty_database_is_refused(pg_cluster: Cluster) -> None:
    store = PostgresStore(pg_cluster.fresh_url(), migrate=False)
    with pytest.raises(StartupError, match="trigger-local migrate"):
        await store.open()


async def test_reads_cannot_write(pg_cluster: Cluster) -> None:
    """The reader's areas have no write methods (the type says so), and its sessions are
    read-only, so not even a cast can write through it."""
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        writer_of_reads = store.read().runs
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await writer_of_reads.insert(make_run("run_a"))  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_an_unreachable_database_is_one_clear_error() -> None:
    store = PostgresStore("postgresql://someone:secret@127.0.0.1:1/nothing")
    with pytest.raises(StartupError, match="cannot connect to the database") as caught:
        await store.open()
    assert "secret" not in str(caught.value)


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"


async def test_a_database_that_went_away_is_a_retryable_503() -> None:
    """The server stopped under the store (a restart, a cut link): reads and transactions get
    DatabaseUnavailableError (503, which clients and task processes retry), never a 500."""
    own = Cluster(require_postgres()).start()  # its own server: this test stops it
    try:
        store = PostgresStore(own.fresh_url(), pool_size=1)
        await store.open()
        assert await store.read().kv.get("k") is None
        own.stop()
        with pytest.raises(DatabaseUnavailableError) as caught:
            await store.read().kv.get("k")
        assert caught.value.status == 503
        with pytest.raises(DatabaseUnavailableError):
            async with store.tx() as ops:
                await ops.kv.set("k", "1")
        await store.close()
    finally:
        own.stop()


async def test_a_commit_with_events_is_announced_even_when_a_run_was_inserted_after_them(
        pg_cluster: Cluster) -> None:
    """The other daemons wake on the NOTIFY of a commit that recorded events. A run inserted
    after the transaction's first event (a child run triggered after its parent's event) once
    reset the note that events were written, and the commit went unannounced."""
    url = pg_cluster.fresh_url()
    store = PostgresStore(url, daemon_id="daemon_a")
    await store.open()
    listener = await asyncpg.connect(url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        async with store.tx() as ops:
            await ops.events.append("run_a", "run.created", T0, {})
            await ops.runs.insert(make_run("run_b"))
        payload = await asyncio.wait_for(heard.get(), 30)
        assert payload.startswith("daemon_a|"), payload
    finally:
        await listener.close()
        await store.close()


async def test_values_written_into_statements_come_back_as_they_were(pg_cluster: Cluster) -> None:
    """Kept writes go with the commit, their values written in as literals (inline.py): quotes,
    backslashes, `$$`, a statement's end and non-ASCII text come back unchanged, and a value
    that cannot be written in (NUL) is sent on its own, and refused by the database."""
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    tricky = "it's a \\' quote; COMMIT; $$ -- é\n\t\\x00 '' ?"
    try:
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_a", payload=tricky, updated_at=T0 + 0.1))
            await ops.events.append("run_a", tricky, T0, {"text": tricky})
        [event] = await store.read().events.after(0)
        assert (event.type, event.data, event.at) == (tricky, {"text": tricky}, T0)
        run = await store.read().runs.get("run_a")
        assert run is not None and (run.payload, run.updated_at) == (tricky, T0 + 0.1)
        with pytest.raises(Exception, match="0x00|null"):
            async with store.tx() as ops:
                await ops.events.append("run_a", "run.created", T0, {})
                await ops.events.append("run_a", "nul \x00", T0, {})
        assert len(await store.read().events.after(0)) == 1  # nothing of it committed
    finally:
        await store.close()


async def test_a_dequeues_first_reads_come_as_json_decoded_once(pg_cluster: Cluster) -> None:
    """The locked read (sql.py LOCKED_READ) answers one JSON object whose reads are arrays,
    not JSON text inside JSON (which was decoded twice)."""
    conn = await asyncpg.connect(pg_cluster.fresh_url())
    try:
        await migrate(conn, 1)
        text = await conn.fetchval(dequeue_reads.AS_JSON)
    finally:
        await conn.close()
    assert all(isinstance(rows, list) for rows in json.loads(text).values())
    assert dequeue_reads.answers_of(text) == {
        sql: [{"n": 0}] if sql == dequeue_reads.CATALOG else [] for sql in dequeue_reads.READS}
