"""What the CLI asks of the database itself, outside a daemon: `trigger-local migrate` (apply
the schema) and `doctor`'s database check (can we connect, at which schema version). The CLI
never imports the store: it imports this module, lazily, as `up` imports the daemon."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .config import DaemonSettings
from .errors import StartupError
from .store.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from .store.postgres.sql import Owner
from .store.postgres.store import connect_pool, migrate, redact, schema_version
from .store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from .store.sqlite.store import SqliteStore


@dataclass(frozen=True)
class SchemaState:
    """Where a database is: `before` → `after` (equal when nothing was applied)."""

    database: str
    before: int
    after: int
    latest: int


def migrate_database(settings: DaemonSettings) -> SchemaState:
    """Apply the migrations the database lacks (a daemon does the same at start). Raises
    StartupError with one line saying what is wrong."""
    return asyncio.run(_migrate(settings))


async def _migrate(settings: DaemonSettings) -> SchemaState:
    if not settings.database_url:
        path = settings.db_path
        before = _sqlite_version(settings) if path.exists() else 0
        store = SqliteStore(str(path))
        await store.open()
        await store.close()
        return SchemaState(str(path), before, len(SQLITE_MIGRATIONS), len(SQLITE_MIGRATIONS))
    url = settings.database_url
    pool = await connect_pool(url, 1)
    try:
        async with pool.acquire() as conn:
            before = await schema_version(conn)
            key = int(await conn.fetchval("SELECT hashtext(current_schema())"))
            after = await migrate(conn, key, Owner("", settings.lease_timeout_s))
    finally:
        await pool.close()
    return SchemaState(redact(url), before, after, len(PG_MIGRATIONS))


def _sqlite_version(settings: DaemonSettings) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(settings.db_path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_postgres(url: str, timeout_s: float = 5.0) -> tuple[str, str, str]:
    """doctor's check of `database_url`: (level, detail, fix)."""
    try:
        version, server = asyncio.run(asyncio.wait_for(_probe(url), timeout_s))
    except (TimeoutError, StartupError) as exc:
        detail = str(exc) or f"no answer within {timeout_s:g} s from {redact(url)}"
        return ("fail", detail, "Check the URL, that PostgreSQL runs there and accepts this "
                                "user (pg_hba.conf), then run `trigger-local doctor` again.")
    where = f"{redact(url)} ({server})"
    latest = len(PG_MIGRATIONS)
    if version == latest:
        return ("ok", f"{where}, schema version {version}", "")
    if version == 0:
        return ("warn", f"{where}: no schema yet",
                "Run `trigger-local migrate` (or start `trigger-local up`: it migrates).")
    if version < latest:
        return ("warn", f"{where}: schema version {version}, this trigger-local has {latest}",
                "Run `trigger-local migrate`.")
    return ("fail", f"{where}: schema version {version} is newer than this trigger-local's "
                    f"({latest})", "Upgrade trigger-local on this host.")


async def _probe(url: str) -> tuple[int, Any]:
    pool = await connect_pool(url, 1)
    try:
        async with pool.acquire() as conn:
            server = await conn.fetchval(
                "SELECT 'PostgreSQL ' || current_setting('server_version')")
            return await schema_version(conn), server
    finally:
        await pool.close()
