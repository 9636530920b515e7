"""SqliteStore: the storage interface (store/interface.py) on one SQLite file.

Two plain sqlite3 connections used on the event loop's thread: one writer (an asyncio.Lock
around each whole transaction, `BEGIN IMMEDIATE`) and one reader (WAL lets it read while the
writer writes; `query_only`, so nothing can write through it). Each connection has one view —
the areas over it — built once: a transaction or a read costs no objects.

Why not aiosqlite (a thread per connection), and why it is not a dependency: measured on this
project's 2-core machine, a thread hop per statement cost more than the statements themselves
(the engine ran ~5x slower, docs/benchmarks.md); and on a shared aiosqlite reader, statements
of concurrent requests overlap, which keeps one read transaction open across them, so a read
could see a snapshot older than a write that had already committed (a held run polling its
waitpoint saw the run but not the waitpoint). Each operation here runs to completion before
the loop moves on, so neither can happen. A read that may take long (a list page that must
check rows one by one) runs off the loop instead, on reader threads with connections of their
own (off_loop.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from ...errors import DaemonStoppingError, StartupError, TransactionLostError
from ..counts import CountJournal
from .catalog import SqliteProjects, SqliteQueues, SqliteVersions
from .counts import write_counts
from .memo import CatalogMemo, NoMemo
from .off_loop import OffLoop
from .records import (
    SqliteCheckpoints,
    SqliteEvents,
    SqliteKv,
    SqliteLogs,
    SqliteRequests,
    SqliteWorkers,
)
from .runs import SqliteAttempts, SqliteRuns, SqliteSnapshots, SqliteTimers
from .schema import MIGRATIONS
from .sql import Sql
from .steps import SqliteSteps
from .streams import SqliteStreams
from .timed import SqliteDebounces, SqliteEnvVars, SqliteRateLimits, SqliteSchedules
from .waitpoints import SqliteBatches, SqliteWaitpoints
from .wal import WalCheckpointer

RECLAIM_PAGES = 100
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the writer
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints; WAL keeps it consistent after a crash
    "PRAGMA busy_timeout=5000",  # a second process (a restarted daemon) waits for the lock
    "PRAGMA foreign_keys=ON",  # tasks go with their version
)


class SqliteView:
    """Every area over one connection: a `StoreTx` on the writer, a `StoreReader` on the reader."""

    def __init__(self, conn: sqlite3.Connection, memo: CatalogMemo,
                 off_loop: OffLoop | None = None) -> None:
        self._conn = conn
        #: the writer's keeps what every dequeue reads of the queues and rate limits (memo.py)
        self.memo = memo
        self._sql = sql = Sql(conn)
        #: the open transaction's counter deltas (the writer's; a reader's stays empty)
        self.counts = CountJournal()
        self.runs = SqliteRuns(sql, self.counts, off_loop)
        self.snapshots = SqliteSnapshots(sql)
        self.attempts = SqliteAttempts(sql)
        self.timers = SqliteTimers(sql)
        self.events = SqliteEvents(sql)
        self.logs = SqliteLogs(sql)
        self.waitpoints = SqliteWaitpoints(sql, off_loop)
        self.batches = SqliteBatches(sql)
        self.projects = SqliteProjects(sql)
        self.versions = SqliteVersions(sql)
        self.queues = SqliteQueues(sql, self.counts, memo)
        self.schedules = SqliteSchedules(sql)
        self.rate_limits = SqliteRateLimits(sql, memo)
        self.debounces = SqliteDebounces(sql)
        self.env_vars = SqliteEnvVars(sql)
        self.workers = SqliteWorkers(sql)
        self.checkpoints = SqliteCheckpoints(sql)
        self.requests = SqliteRequests(sql)
        self.kv = SqliteKv(sql)
        self.steps = SqliteSteps(sql)
        self.streams = SqliteStreams(sql)

    def write_counts(self) -> None:
        """The open transaction's counter sums (store/sqlite/counts.py), just before COMMIT."""
        write_counts(self._sql, self.counts)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """store/interface.py `StoreTx.savepoint` (SQLite savepoints nest by name)."""
        self._conn.execute("SAVEPOINT part").close()
        mark = self.counts.mark()
        try:
            yield
        except BaseException as exc:
            self.counts.undo(mark)
            if not self._conn.in_transaction:  # SQLite rolled it all back (SQLITE_FULL, ...)
                raise TransactionLostError(exc) from exc
            with contextlib.suppress(sqlite3.Error):  # a failed COMMIT's rollback handles the rest
                self._conn.execute("ROLLBACK TO part").close()
                self._conn.execute("RELEASE part").close()
            raise
        self._conn.execute("RELEASE part").close()


class SqliteStore:
    """The store on one SQLite file. `await open()` first; `close()` at the end."""

    shared = False  # one daemon per home (daemon_lock.py)
    packets = None  # its packets are the files of that home (packet_store.py)

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_view: SqliteView | None = None
        self._read_view: SqliteView | None = None
        self._off_loop: OffLoop | None = None
        self._wal: WalCheckpointer | None = None
        self._lock = asyncio.Lock()
        self._reclaiming: asyncio.Future[int] | None = None  # `reclaim`'s thread, while it runs

    async def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        # a new file: pages that retention frees can go back to the file system (`reclaim`).
        # It must be set before anything is written (WAL mode included) and cannot be switched
        # on later without a full VACUUM, so a file made before keeps freed pages for reuse.
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self._writer = self._connect("PRAGMA auto_vacuum=INCREMENTAL" if new else None)
        _migrate(self._writer)
        # a savepoint (every part of a group commit has one) keeps the pages it changes in a
        # sub-journal, a temporary file past 64 KiB: a batch of 500 triggers, or a group of
        # starts and finishes, wrote ~25 pages a run there with a system call each (issue #13).
        # In memory they cost no call; they are only ever read to roll a savepoint back, so
        # durability does not change (the WAL holds every commit). After the migrations: a
        # table copy's sort may be larger than memory should hold.
        self._writer.execute("PRAGMA temp_store=MEMORY").close()
        self._reader = self._connect()
        self._reader.execute("PRAGMA query_only=ON").close()
        self._off_loop = OffLoop(self._connect)
        # checkpoints in the quiet moments between commits (wal.py)
        self._wal = WalCheckpointer(self._connect)
        self._write_view = SqliteView(self._writer, CatalogMemo())
        self._read_view = SqliteView(self._reader, NoMemo(), self._off_loop)

    def _connect(self, first: str | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in (first, *_PRAGMAS) if first else _PRAGMAS:
            conn.execute(pragma).close()
        return conn

    async def close(self) -> None:
        self._write_view = self._read_view = None
        if self._wal is not None:
            self._wal.close()
            self._wal = None
        if self._reclaiming is not None and self._writer is not None:
            self._writer.interrupt()  # a thread still on the writer: stop it, then close
            with contextlib.suppress(sqlite3.Error, asyncio.CancelledError):
                await self._reclaiming
        if self._off_loop is not None:
            self._off_loop.close()
            self._off_loop = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def tx(self, exclusive: bool = False, starts: bool = False) -> AsyncIterator[SqliteView]:
        """One atomic write transaction (store/interface.py; each is `exclusive` here, and
        `starts` too: one at a time). Raises DaemonStoppingError once closed."""
        async with self._lock:
            writer, view = self._writer, self._write_view
            if writer is None or view is None:
                raise _stopping()
            writer.execute("BEGIN IMMEDIATE").close()
            view.counts.clear()
            try:
                yield view
                # synchronous, with no await around it: a cancelled request cannot cut a
                # COMMIT in half, and nothing else runs between the block's end and the commit
                view.write_counts()  # the status changes' counters, in this transaction
                writer.execute("COMMIT").close()
                if self._wal is not None:
                    self._wal.committed()
            except BaseException:
                view.counts.clear()
                # A COMMIT that failed with SQLITE_FULL or SQLITE_IOERR may leave the
                # transaction open; the next BEGIN would then fail for good. Roll back what is left.
                if writer.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        writer.execute("ROLLBACK").close()
                raise
            finally:
                view.memo.ended()  # a transaction that wrote the queues kept nothing it read

    async def reclaim(self) -> int:
        """Hand up to RECLAIM_PAGES free pages back to the file system (a file made with
        incremental auto-vacuum; others reuse them) and return how many stay free.

        Moving a page reads it and the pages that point at it: 100 pages take 20–40 ms on a
        cold million-run file, 1,000 took 200–500 ms. So the pragma runs on a thread, with
        the writer's lock held (a transaction waits for it, the event loop does not)."""
        async with self._lock:
            writer = self._writer
            if writer is None or not _free_pages(writer):
                return 0
            self._reclaiming = asyncio.get_running_loop().run_in_executor(
                None, _incremental_vacuum, writer)
            try:
                return await asyncio.shield(self._reclaiming)
            except asyncio.CancelledError:
                # the lock must outlive the thread's use of the writer
                writer.interrupt()
                with contextlib.suppress(sqlite3.Error):
                    await self._reclaiming
                raise
            except sqlite3.OperationalError:
                if self._write_view is None:
                    return 0  # interrupted by close(): nothing is lost, the pages stay free
                raise
            finally:
                self._reclaiming = None

    def read(self) -> SqliteView:
        """Reads; each statement sees the latest committed state."""
        if self._read_view is None:  # a request that arrives while the daemon closes: 503
            raise _stopping()
        return self._read_view


def _stopping() -> DaemonStoppingError:
    return DaemonStoppingError("The daemon is stopping: retry once it runs again")


def _free_pages(db: sqlite3.Connection) -> int:
    row = db.execute("PRAGMA freelist_count").fetchone()
    return int(row[0]) if row else 0


def _incremental_vacuum(db: sqlite3.Connection) -> int:
    # executescript steps the pragma to its end: `execute(...).fetchall()` frees one page a
    # call (it steps the statement once, as it returns no row)
    db.executescript(f"PRAGMA incremental_vacuum({RECLAIM_PAGES});")
    return _free_pages(db)


def _version(db: sqlite3.Connection) -> int:
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def _migrate(db: sqlite3.Connection) -> None:
    current = _version(db)
    if current > len(MIGRATIONS):  # a newer trigger-local's schema: its writes would go wrong
        raise StartupError(f"the database is at schema version {current}, newer than this "
                           f"trigger-local ({len(MIGRATIONS)}): upgrade trigger-local")
    started = time.monotonic()
    if 0 < current < len(MIGRATIONS):  # a long history can take a minute: say so, once
        structlog.get_logger().info(
            "upgrading the database's schema (with a long history this takes a while, "
            "about a minute per million runs)", version=current, to=len(MIGRATIONS))
    for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if 0 < current < len(MIGRATIONS):
        structlog.get_logger().info("database schema upgraded", version=len(MIGRATIONS),
                                    seconds=round(time.monotonic() - started, 1))


def _statements(script: str) -> list[str]:
    """A migration's statements; a `;` inside a trigger's BEGIN … END does not end one."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending)
            pending = ""
    return out
