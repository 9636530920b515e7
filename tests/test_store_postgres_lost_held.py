"""The transactions' held connection lost between two transactions (the server ended its
session): asyncpg hands a lost pool connection back to the pool itself, and asking it anything
afterwards (`is_closed()`) raises InterfaceError. The transaction that meets the loss fails with
DatabaseUnavailableError at most (a 503, which clients and task processes retry), not with that raw
InterfaceError from the store's clean-up, and the next transaction connects again — with no
prepared statement of the lost session's (store/postgres/prepared.py). On a real server."""

from __future__ import annotations

from pg_cluster import Cluster

from tests.store_support import pg_store_and_admin, write_run
from trigger_local.errors import DatabaseUnavailableError


async def test_a_lost_held_connection_is_a_503_then_connected_again(pg_cluster: Cluster) -> None:
    async with pg_store_and_admin(pg_cluster.fresh_url()) as (store, admin):
        await write_run(store, 1)
        await write_run(store, 2)  # its statements executed by name
        pid = store._conns[False].conn.get_server_pid()
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        try:  # (connected again at once if asyncpg saw the loss before it began)
            await write_run(store, 3)
        except DatabaseUnavailableError:  # nothing else: a 503, retried
            await write_run(store, 3)
        await write_run(store, 4)
        assert [e.data["n"] for e in await store.read().events.after(0)] == [1, 2, 3, 4]
