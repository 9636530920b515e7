"""packet_sharing.py on a real PostgreSQL store shared by two homes (two daemons' packets): a
home's file is the store's packet of its name, kept up to date; and on SQLite nothing changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from pg_cluster import Cluster, free_port

from trigger_local import packet_sharing, packet_store
from trigger_local.errors import DaemonStoppingError, DatabaseUnavailableError, NotFoundError
from trigger_local.store.postgres.packets import PgPackets
from trigger_local.store.postgres.store import PostgresStore, connect_pool
from trigger_local.store.sqlite.store import SqliteStore


async def test_each_home_holds_the_stores_packet_of_a_name(tmp_path: Path,
                                                           pg_cluster: Cluster) -> None:
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    a, b = tmp_path / "a", tmp_path / "b"
    try:
        shared = store.packets
        await packet_sharing.write(shared, a, "p.json", b'"one"', "application/json", "proj_a")
        assert packet_store.read(b, "p.json") is None
        await packet_sharing.hold(shared, b, "p.json")
        assert packet_store.read(b, "p.json") == (b'"one"', "application/json")
        assert packet_store.owner(b, "p.json") == (True, "proj_a")
        # written again through B: A's file is replaced when A next holds it
        await packet_sharing.write(shared, b, "p.json", b'"two"', "text/plain", "proj_a")
        await packet_sharing.hold(shared, a, "p.json")
        assert packet_store.read(a, "p.json") == (b'"two"', "text/plain")
        # deleted (retention) through A: B's copy goes when B next holds it
        await packet_sharing.delete(shared, a, ["p.json"])
        assert packet_store.read(a, "p.json") is None
        await packet_sharing.hold(shared, b, "p.json")
        assert packet_store.read(b, "p.json") is None
        # a home's packet that never was the store's (stored before it had packets) stays
        packet_store.write(a, "old.json", b"1", "application/json")
        await packet_sharing.hold(shared, a, "old.json")
        assert packet_store.read(a, "old.json") == (b"1", "application/json")
        # a home where the name cannot be kept (a packet is where its directory would be)
        await packet_sharing.write(shared, a, "d/x.json", b"2", "application/json")
        packet_store.write(b, "d", b"3", "application/json")
        await packet_sharing.hold(shared, b, "d/x.json")
        assert packet_store.read(b, "d/x.json") is None
        # a big step result is the store's too
        big = "z" * packet_store.OFFLOAD_BYTES
        kept = await packet_sharing.offload(shared, a, "steps/r/1", big, "application/json")
        assert kept == ("steps/r/1", packet_store.STORE)
        await packet_sharing.hold(shared, b, "steps/r/1")
        assert packet_store.read(b, "steps/r/1") == (big.encode(), "application/json")
    finally:
        await store.close()


async def test_on_sqlite_the_homes_files_are_the_packets(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "trigger-local.db"))
    await store.open()
    try:
        assert store.packets is None
        await packet_sharing.write(store.packets, tmp_path, "p.json", b"1", "application/json")
        await packet_sharing.hold(store.packets, tmp_path, "p.json")
        assert packet_store.read(tmp_path, "p.json") == (b"1", "application/json")
        await packet_sharing.delete(store.packets, tmp_path, ["p.json"])
        assert packet_store.read(tmp_path, "p.json") is None
    finally:
        await store.close()


async def test_the_stores_packets_answer_503_without_the_database_and_stop_with_it(
        pg_cluster: Cluster) -> None:
    unreachable = PgPackets(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                            connect_pool)
    with pytest.raises(DatabaseUnavailableError):
        await unreachable.head("p.json")
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    await store.packets.put("p.json", None, "application/json", "d", b"1")
    assert await store.packets.head("p.json") == (None, "application/json", "d")
    await store.close()
    with pytest.raises(DaemonStoppingError):
        await store.packets.head("p.json")


async def test_a_write_never_takes_another_projects_packet_of_the_name(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    """Two projects upload one name at once, through one daemon or two: both uploads pass the
    owner check (api/packets.py `put_packet`: no packet of that name yet) before either is
    written. The store's row decides, in the statement that writes it: the later write is
    404, and the first project's packet stays its own in every home."""
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    a, b = tmp_path / "a", tmp_path / "b"
    try:
        shared = store.packets
        for home in (a, b):  # both owner checks, before either write
            await packet_sharing.hold(shared, home, "p.json")
            assert packet_store.owner(home, "p.json") == (False, None)
        await packet_sharing.write(shared, a, "p.json", b'"p"', "application/json", "proj_p")
        with pytest.raises(NotFoundError):  # through another daemon
            await packet_sharing.write(shared, b, "p.json", b'"q"', "text/plain", "proj_q")
        with pytest.raises(NotFoundError):  # through the same one
            await packet_sharing.write(shared, a, "p.json", b'"q"', "text/plain", "proj_q")
        for home in (a, b):
            await packet_sharing.hold(shared, home, "p.json")
            assert packet_store.read(home, "p.json") == (b'"p"', "application/json")
            assert packet_store.owner(home, "p.json") == (True, "proj_p")
        # the project's own upload again, and a big step result (the daemon's name), still do
        await packet_sharing.write(shared, b, "p.json", b'"p2"', "application/json", "proj_p")
        await packet_sharing.hold(shared, a, "p.json")
        assert packet_store.read(a, "p.json") == (b'"p2"', "application/json")
    finally:
        await store.close()


async def test_the_stores_packets_answer_503_when_the_server_refuses_their_reconnection(
        pg_cluster: Cluster) -> None:
    """The packets pool reconnects when its connection is gone (a restart ends it); a server
    that refuses the new one (too many connections; class 57, while it starts or stops) is a
    database that does not answer: DatabaseUnavailableError (503), not a 500."""
    url = pg_cluster.fresh_url()
    schema = url.rsplit("search_path=", 1)[1]
    role = f"{schema}_r"
    pg_cluster.psql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1; "
                    f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    store = PostgresStore(url)
    await store.open()
    pg_cluster.psql(f"GRANT SELECT ON {schema}.packets TO {role}")
    role_url = url.replace("postgresql://postgres@", f"postgresql://{role}@")
    packets = PgPackets(role_url, connect_pool)
    other = None
    try:
        assert await packets.head("p.json") is None  # its pool: one connection
        for _ in range(100):  # its connection ended, the role's one connection taken
            pg_cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            f"WHERE usename = '{role}'")
            try:
                other = await asyncpg.connect(role_url.split("?")[0])
                break
            except asyncpg.TooManyConnectionsError:
                await asyncio.sleep(0.05)
        assert other is not None
        with pytest.raises(DatabaseUnavailableError):
            await packets.head("p.json")
    finally:
        if other is not None:
            await other.close()
        await packets.close()
        await store.close()


async def test_retention_leaves_no_copy_that_a_hold_made_meanwhile(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    """Retention removes a packet's row, then the home's file: a hold of the packet in the
    daemon meanwhile (a presigned GET) cannot fetch the row into a file nothing would delete
    (no run names the packet any more, so no hold comes again)."""
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    home = tmp_path / "a"
    locker = await asyncpg.connect(url)
    try:
        shared = store.packets
        await packet_sharing.write(shared, home, "p.json", b"1", "application/json", "proj_a")
        lock = locker.transaction()  # another transaction on the row: the DELETE waits for it
        await lock.start()
        await locker.execute("SELECT 1 FROM packets WHERE name = 'p.json' FOR UPDATE")
        deleting = asyncio.create_task(packet_sharing.delete(shared, home, ["p.json"]))
        await asyncio.sleep(0.3)
        await packet_sharing.hold(shared, home, "p.json")
        await lock.rollback()
        await deleting
        assert packet_store.held(home, "p.json") is None
        assert await shared.head("p.json") is None
    finally:
        await locker.close()
        await store.close()
