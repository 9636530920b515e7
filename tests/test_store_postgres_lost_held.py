"""The transactions' held connection lost between two transactions (the server ended its
session): asyncpg hands a lost pool connection back to the pool itself, and asking it anything
afterwards (`is_closed()`) raises InterfaceError. The transaction that meets the loss fails with
DatabaseUnavailableError at most (a 503, which clients and task processes retry), not with that raw
InterfaceError from the store's clean-up, and the next transaction connects again — with no
prepared statement of the lost session's (store/postgres/prepared.py). On a real server."""

from __future__ import annotations

import asyncpg
from pg_cluster import Cluster

from tests.store_support import T0, make_run
from trigger_local.errors import DatabaseUnavailableError
from trigger_local.store.postgres import PostgresStore


async def write(store: PostgresStore, n: int) -> None:
    async with store.tx() as tx:
        await tx.runs.insert(make_run(f"run_{n}"))
        await tx.events.append(f"run_{n}", "run.created", T0, {"n": n})


async def test_a_lost_held_connection_is_a_503_then_connected_again(pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    admin = await asyncpg.connect(url)
    try:
        await write(store, 1)
        await write(store, 2)  # its statements executed by name
        pid = store._conns[False].conn.get_server_pid()
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        try:  # (connected again at once if asyncpg saw the loss before it began)
            await write(store, 3)
        except DatabaseUnavailableError:  # nothing else: a 503, retried
            await write(store, 3)
        await write(store, 4)
        assert [e.data["n"] for e in await store.read().events.after(0)] == [1, 2, 3, 4]
    finally:
        await admin.close()
        await store.close()
