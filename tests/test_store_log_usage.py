"""The store's count of each attempt's logs against the cap (`log_usage`: SQLite migration 23,
PostgreSQL 13; engine/log_cap.py): a database left at any earlier version of either store
migrates to it (the same table a new database gets), and the count is kept as the engine
writes it: an attempt's first count as it is, later ones added, `marked` once set kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
from pg_cluster import Cluster, schema_at

from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import LogUsage
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from trigger_local.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS


async def _counts_as_the_engine_writes_them(store: Store) -> None:
    read = store.read()
    assert await read.logs.usage("run_a", 1) is None  # never counted
    async with store.tx() as tx:
        await tx.logs.add_usage("run_a", 1, LogUsage(5, 50), LogUsage(1, 10))  # first: as is
        await tx.logs.add_usage("run_a", 2, LogUsage(1, 1), LogUsage(1, 1))
    async with store.tx() as tx:
        await tx.logs.add_usage("run_a", 1, LogUsage(5, 50, 3, 30),
                                LogUsage(dropped_lines=3, dropped_bytes=30))  # then added
    async with store.tx() as tx:
        await tx.logs.add_usage("run_a", 1, LogUsage(5, 50, 3, 30, True), LogUsage(marked=True))
        await tx.logs.add_usage("run_a", 1, LogUsage(5, 50, 4, 40), LogUsage(0, 0, 1, 10))
    assert await read.logs.usage("run_a", 1) == LogUsage(5, 50, 4, 40, marked=True)
    assert await read.logs.usage("run_a", 2) == LogUsage(1, 1)


def _sqlite_columns(path: Path) -> list[tuple[str, str, int]]:
    with closing(sqlite3.connect(path)) as db:
        return [(r[1], r[2], r[5]) for r in db.execute("PRAGMA table_info(log_usage)")]


@pytest.mark.parametrize("version", range(1, len(SQLITE_MIGRATIONS)))
async def test_a_sqlite_database_at_any_earlier_version_gets_the_count(
        tmp_path: Path, version: int) -> None:
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        for sql in SQLITE_MIGRATIONS[:version]:
            db.executescript(sql)
        db.execute(f"PRAGMA user_version = {version}")
    store = SqliteStore(str(old))
    await store.open()
    try:
        await _counts_as_the_engine_writes_them(store)
    finally:
        await store.close()
    fresh = SqliteStore(str(tmp_path / "fresh.db"))
    await fresh.open()
    await fresh.close()
    assert _sqlite_columns(old) == _sqlite_columns(tmp_path / "fresh.db") != []


async def _pg_columns(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'log_usage' ORDER BY ordinal_position")
        return [(r[0], r[1]) for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("version", range(1, len(PG_MIGRATIONS)))
async def test_a_postgres_database_at_any_earlier_version_gets_the_count(
        pg_cluster: Cluster, version: int) -> None:
    url = pg_cluster.fresh_url()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await schema_at(conn, version)
    finally:
        await conn.close()
    store = PostgresStore(url)
    await store.open()  # migrates
    try:
        await _counts_as_the_engine_writes_them(store)
    finally:
        await store.close()
    fresh = pg_cluster.fresh_url()
    new = PostgresStore(fresh)
    await new.open()
    await new.close()
    assert await _pg_columns(url) == await _pg_columns(fresh) != []
