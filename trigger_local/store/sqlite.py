"""SqliteStore: the store on one SQLite file.

Two plain sqlite3 connections used on the event loop's thread, behind the small async surface
`Ops` expects (`SyncConnection`): one writer (an asyncio.Lock around each whole transaction,
`BEGIN IMMEDIATE`) and one reader (WAL lets it read while the writer writes).

Why not aiosqlite's thread per connection, as the design card says: measured on this
project's 2-core machine, a thread hop per statement cost more than the statements themselves
(the engine ran ~5x slower, docs/benchmarks.md); and on a shared aiosqlite reader, statements
of concurrent requests overlap, which keeps one read transaction open across them, so a read
could see a snapshot older than a write that had already committed (a held run polling its
waitpoint saw the run but not the waitpoint). Each operation here runs to completion before
the loop moves on, so neither can happen. aiosqlite stays available for a future read-heavy
path that must not block the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..errors import DaemonStoppingError
from .connection import SyncConnection
from .ops import Ops
from .schema import MIGRATIONS

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the writer
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints; WAL keeps it consistent after a crash
    "PRAGMA busy_timeout=5000",  # a second process (a restarted daemon) waits for the lock, not fails
    "PRAGMA foreign_keys=ON",  # tasks go with their version
)


class SqliteStore:
    """The store on one SQLite file. `await open()` first; `close()` at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: SyncConnection | None = None
        self._reader: SyncConnection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._writer = self._connect()
        await self._migrate(self._writer)
        self._reader = self._connect()

    def _connect(self) -> SyncConnection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            conn.execute(pragma).close()
        return SyncConnection(conn)

    async def _migrate(self, db: SyncConnection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Ops]:
        """One atomic write transaction: everything done through the yielded Ops commits together
        or, if the block or the COMMIT raises, not at all. Raises DaemonStoppingError once closed."""
        writer = self._open(self._writer)
        async with self._lock:
            await writer.execute("BEGIN IMMEDIATE")
            try:
                yield Ops(writer)
                await asyncio.shield(writer.execute("COMMIT"))
            except BaseException:
                # A COMMIT that failed with SQLITE_FULL or SQLITE_IOERR may leave the transaction
                # open; the next BEGIN would then fail for good. Roll back whatever is left.
                if writer.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await asyncio.shield(writer.execute("ROLLBACK"))
                raise

    def read(self) -> Ops:
        """Operations for queries; each statement sees the latest committed state."""
        return Ops(self._open(self._reader))

    @staticmethod
    def _open(conn: SyncConnection | None) -> SyncConnection:
        if conn is None:  # a request that arrives while the daemon closes: 503, not a crash
            raise DaemonStoppingError("The daemon is stopping: retry once it runs again")
        return conn
