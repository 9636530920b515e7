"""PostgresStore: the storage interface (store/interface.py) on a PostgreSQL database, through
asyncpg (a maintained async driver: each statement is awaited, the event loop goes on meanwhile).

Several daemons' transactions run at once; PostgreSQL keeps them correct (docs/scaling.md):

- every transaction is SERIALIZABLE: the database commits only transactions whose outcome is
  that of some one-at-a-time order, and refuses the others (`TransactionRetryError`; the engine
  runs the unit of work again), so every read-decide-write of the engine holds across daemons
  as it does in one, without a lock of our own around it;
- a transaction opened with `exclusive` (the dequeue) takes the dequeues' turn first (a lock
  on the table `dequeue_turn`, held to its end) and runs READ COMMITTED: dequeues run one at a
  time across daemons, each statement seeing every dequeue committed before. That is all a
  dequeue needs: only a transaction in that turn makes a run start to count as running
  (DEQUEUED, or EXECUTING from QUEUED; else EXECUTING comes only from DEQUEUED: on a shared
  store no run resumes in place, engine/resuming.py), so the running
  counts, concurrency keys and rate-limit state it checks can only have gone down meanwhile;
  its candidate rows are taken `FOR UPDATE SKIP LOCKED` and moved by compare-and-set, so a
  serializable transaction that changes one of them (a cancel, a TTL expiry) either waits and
  is then refused, or commits first and the row is no longer QUEUED. Outside the serializable
  checks, a dequeue neither refuses other transactions nor is refused by them;
- a transaction opened with `starts` (a trigger that starts its new run at once, in the same
  transaction: engine/starting.py) is SERIALIZABLE, like any other, and takes the same turn
  before its first statement. A table lock takes no snapshot, so the transaction's snapshot
  (its first read's) is taken once the turn is held, and sees every dequeue committed before:
  the dequeue it runs counts what a read-committed one would, and its trigger keeps every
  serializable guarantee (idempotency and request keys, a parent's waitpoint). Its candidate
  rows are locked `FOR UPDATE SKIP LOCKED` as a dequeue's: one changed since its snapshot
  refuses it (the engine runs it again);
- events: the first append of a transaction takes a transaction advisory lock held until its
  commit, so event sequence numbers are handed out in commit order (the SSE cursor relies on
  it) while the transactions' work before their first event runs side by side.

Inside one daemon, transactions still run one at a time (an asyncio lock: group commit batches
what arrives meanwhile). Reads go through the pool, each statement on a free connection, seeing
the latest committed state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ...errors import DaemonStoppingError, StartupError, TransactionRetryError
from ..models import Run
from .daemons import (
    CHANNEL,
    PROBE_S,
    Commit,
    DaemonRow,
    Listener,
    Others,
    announcement,
    daemons,
    heartbeat,
    hello,
    moved_past,
    orphaned_runs,
    refuse_while_others_run,
)
from .packets import PgPackets
from .prepared import Held
from .reach import UNREACHABLE, lost, reachable
from .schema import MIGRATIONS
from .sql import BEGIN, BEGIN_EXCLUSIVE, LOCKED_READ, TURN, Owner, PgSql
from .start_reads import START_READ
from .view import PgView

#: the first key of the advisory lock migrations take ("tl"); the second is the schema's
LOCK_CLASS = 0x746C
#: the first key of the events' lock (LOCK_CLASS + 1 was the dequeues' lock before migration
#: 10: their turn is a table lock now, sql.py `TURN`)
EVENTS_CLASS = LOCK_CLASS + 2
_SCHEMA_VERSION = """CREATE TABLE IF NOT EXISTS schema_version (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), version BIGINT NOT NULL)"""


class PostgresStore:
    """The store on a PostgreSQL database (`url`: `postgresql://user:pass@host:port/db`).
    `await open()` first; `close()` at the end."""

    shared = True  # several daemons may use one database

    def __init__(self, url: str, *, pool_size: int = 8, migrate: bool = True,
                 daemon_id: str = "", lease_s: float = 30.0) -> None:
        self.url = url
        self.owner = Owner(daemon_id, lease_s)
        self._pool_size = pool_size
        self._migrate = migrate
        self._pool: Any = None
        self._read_pool: Any = None
        #: the transactions' connections, held between them (`_held`): by `exclusive`
        self._conns: dict[bool, Held] = {}
        self._write_view: PgView | None = None
        self._read_view: PgView | None = None
        self._lock = asyncio.Lock()
        self._lock_key = 0
        #: whether another daemon shares the database (daemons.py): known once this store's
        #: daemon listens (`listener`); until then, every commit that would is announced
        self.others: Others | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # (`_on_back`)
        #: the packets every daemon of the database reads (packet_sharing.py)
        self.packets = PgPackets(url, connect_pool)

    async def open(self) -> None:
        # three connections at most: the transactions' two (held, `_held`), and a spare for the
        # heartbeat and while one reconnects; no reset statement at each release
        # (values written into statements need standard_conforming_strings: inline.py; the
        # held connection waits between transactions in one begun already: `tx`)
        self._pool = await connect_pool(self.url, 3, reset=_keep,
                                        settings={"standard_conforming_strings": "on",
                                                  "idle_in_transaction_session_timeout": "0"})
        try:
            await self._prepare()
            # reads: read-only sessions, so not even a cast of a reader's area can write
            # (no reset statement at each release either: a read changes no session state)
            self._read_pool = await connect_pool(self.url, self._pool_size, read_only=True,
                                                 reset=_keep)
        except BaseException:
            await self.close()
            raise
        self._write_view = PgView(PgSql(None, self.owner, writes=True))
        self._write_view.sql.events_lock = (EVENTS_CLASS, self._lock_key)
        self._read_view = PgView(PgSql(self._read_pool, self.owner))

    async def _prepare(self) -> None:
        async with self._pool.acquire() as conn:
            self._lock_key = int(await conn.fetchval("SELECT hashtext(current_schema())"))
            if self._migrate:
                await migrate(conn, self._lock_key, self.owner)
            elif await schema_version(conn) != len(MIGRATIONS):
                raise StartupError(f"the database {redact(self.url)} is not at schema version "
                                   f"{len(MIGRATIONS)}: run `trigger-local migrate`")

    async def close(self) -> None:
        for task in self._tasks:  # (`_on_back`)
            task.cancel()
        await self.packets.close()
        self._write_view = self._read_view = None
        pool, self._pool = self._pool, None
        read_pool, self._read_pool = self._read_pool, None
        if read_pool is not None:
            await read_pool.close()
        if pool is not None:
            async with self._lock:  # the transaction under way commits or rolls back first
                conns, self._conns = self._conns, {}
                for held in conns.values():
                    await _roll_back(held.conn)
                    with contextlib.suppress(*UNREACHABLE):
                        await pool.release(held.conn)
                await pool.close()

    async def _held(self, pool: Any, exclusive: bool) -> Held:
        """The connection transactions of this kind (exclusive or not) run on, with the
        statements prepared on it (prepared.py `Held`: a new connection, new names). It is held
        between them rather than given back to the pool: each commit begins the next
        transaction of its kind in the same round trip (sql.py `commit`), so a transaction
        whose first statement reads sends no BEGIN of its own, and a dequeue takes its lock
        and does its first reads in one round trip (sql.py `_dequeue_read`; each connection
        gets its temporary function: the exclusive one LOCKED_READ, the serializable one
        start_reads.py's START_READ, a trigger's queue read with the dequeue's). A begun
        transaction takes no snapshot and no lock until its first statement (its snapshot is
        that statement's), so waiting begun changes nothing for anyone."""
        held = self._conns.pop(exclusive, None)
        if held is not None and not lost(held.conn):
            self._conns[exclusive] = held
            return held
        if held is not None:
            with contextlib.suppress(*UNREACHABLE):
                await pool.release(held.conn)
        with reachable():
            conn = await pool.acquire()
        held = self._conns[exclusive] = Held(conn)
        if self._write_view is not None:
            # a role without the TEMP privilege on the database: more round trips instead
            sql = self._write_view.sql
            with reachable():
                try:
                    await conn.execute(LOCKED_READ if exclusive else START_READ)
                    made = True
                except asyncpg.PostgresError:
                    made = False
            if exclusive:
                sql.locked_read = made
            else:
                sql.start_read = made
        return held

    @asynccontextmanager
    async def tx(self, exclusive: bool = False, starts: bool = False) -> AsyncIterator[PgView]:
        """One atomic write transaction (store/interface.py); `exclusive`: one at a time with
        the other exclusive ones, across daemons; `starts`: serializable, in the same turn as
        the exclusive ones (the module docstring). Raises
        DaemonStoppingError once closed, TransactionRetryError when PostgreSQL refused it for
        a conflict with another daemon's."""
        async with self._lock:
            view, pool = self._write_view, self._pool
            if view is None or pool is None:
                raise _stopping()
            held = await self._held(pool, exclusive)
            conn = held.conn
            begun = conn.is_in_transaction()  # by the last commit of its kind (`_held`)
            sql = view.sql
            try:
                try:
                    sql.conn, sql.wrote_events, sql.wrote_catalog = conn, False, False
                    sql.prepared = held.prepared
                    sql.doomed, sql.due_at, sql.sent, sql.release = False, None, 0, None
                    # held back: it goes with the first statement (sql.py `run`, `commit`).
                    # An exclusive one is read committed and takes the dequeues' turn before its
                    # first statement: each statement sees every exclusive transaction
                    # committed before (the module docstring says why); so does a starting one,
                    # whose snapshot is taken once it holds the turn
                    sql.next_begin = BEGIN_EXCLUSIVE if exclusive else BEGIN
                    turn = exclusive or starts
                    head = None if begun else sql.next_begin
                    sql.begin = "; ".join(s for s in (head, TURN if turn else None) if s) or None
                    sql.pending.clear()
                    sql.exclusive, sql.turn, sql.dequeue_answers = exclusive, turn, None
                    sql.catalog_seen = None
                    sql.ahead = sql.held = None
                    sql.locked.clear()
                    yield view
                    # the kept writes and the announcement (delivered to the listeners at the
                    # commit only) go with the COMMIT: sql.py `commit`
                    notify = (CHANNEL, announcement(self.owner.daemon_id, sql.wrote_catalog,
                                                    sql.due_at)) \
                        if sql.wrote_events or sql.wrote_catalog or sql.due_at is not None \
                        else None
                    if notify is not None and self.others is not None \
                            and not self.others.alive():
                        self.others.skip(sql.wrote_catalog, sql.due_at)
                        notify = None
                    await sql.commit(notify)
                except BaseException as exc:
                    await _roll_back(conn)
                    if sql.doomed and not isinstance(exc, TransactionRetryError):
                        # a part caught the conflict and went on: the transaction is refused
                        raise TransactionRetryError(f"the transaction was refused: {exc}") \
                            from exc
                    raise
                finally:
                    sql.conn = None
            finally:
                if lost(conn):  # lost: the next transaction connects again (`_held`)
                    self._conns.pop(exclusive, None)
                    with contextlib.suppress(*UNREACHABLE):
                        await pool.release(conn)

    # -- several daemons (store/postgres/daemons.py) ---------------------------------------
    async def heartbeat(self, *, host: str, url: str, executor: str, pid: int,
                        started_at: float) -> str | None:
        """Refresh this daemon's row; why it must stop (`daemons.moved_past`), if it must."""
        version = await heartbeat(self._live_pool(), self.owner, host=host, url=url,
                                  executor=executor, pid=pid, started_at=started_at)
        return moved_past(version, len(MIGRATIONS))

    async def daemons(self) -> list[DaemonRow]:
        rows = await daemons(self._live_pool())
        if self.others is not None:
            self.others.note(rows)
        return rows

    async def orphaned_runs(self) -> list[Run]:
        return await orphaned_runs(self._live_pool(), self.owner)

    def listener(self, on_commit: Callable[[Commit], None]) -> Listener:
        """This daemon's listener; from now on its commits are announced only while another
        daemon shares the database (daemons.py `Others`)."""
        self.others = self.others or Others(self.owner, self._on_back)
        return Listener(self.url, self.owner, on_commit, self.others)

    def _on_back(self) -> None:
        task = asyncio.get_running_loop().create_task(self._announce_missed())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_missed(self) -> None:
        """Another daemon seen after none was believed there (daemons.py `Others.seen`): one
        announcement of what the commits not announced meanwhile would have said, after the
        commit under way (one of them may be landing still), so that it looks at the database
        once they are there; with none, a hello."""
        others = self.others
        if others is None:
            return
        async with self._lock:  # (the transactions wait for the lock, not for this NOTIFY)
            missed, others.missed = others.missed, None
        try:
            await asyncio.wait_for(self._live_pool().execute(
                "SELECT pg_notify($1, $2)", CHANNEL, hello(self.owner.daemon_id)
                if missed is None else announcement(self.owner.daemon_id, *missed)), PROBE_S)
        except (*UNREACHABLE, asyncpg.PostgresError, DaemonStoppingError):
            if missed is not None:
                others.skip(*missed)  # kept for the next time one is seen again

    def _live_pool(self) -> Any:
        if self._pool is None:
            raise _stopping()
        return self._pool

    async def reclaim(self) -> int:
        """Nothing: PostgreSQL's autovacuum returns the space deletions free."""
        return 0

    def read(self) -> PgView:
        """Reads; each statement sees the latest committed state."""
        if self._read_view is None:  # a request that arrives while the daemon closes: 503
            raise _stopping()
        return self._read_view


async def _roll_back(conn: Any) -> None:
    """End the transaction under way, if the connection still can (the error that matters is
    the one being raised)."""
    if not lost(conn) and conn.is_in_transaction():
        with contextlib.suppress(*UNREACHABLE, asyncpg.PostgresError):
            await asyncio.shield(conn.execute("ROLLBACK"))


async def _keep(_conn: Any) -> None:
    """The write pool's reset: nothing more than asyncpg's own (which rolls back a transaction
    left open): `tx` ends its transaction, and its locks with it, itself."""


def _stopping() -> DaemonStoppingError:
    return DaemonStoppingError("The daemon is stopping: retry once it runs again")


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


async def connect_pool(url: str, size: int, *, read_only: bool = False,
                       reset: Callable[[Any], Awaitable[None]] | None = None,
                       settings: dict[str, str] | None = None) -> Any:
    """A pool on `url`, or StartupError saying what is wrong (never a traceback)."""
    settings = {**(settings or {}),
                **({"default_transaction_read_only": "on"} if read_only else {})}
    try:
        return await asyncpg.create_pool(url, min_size=1, max_size=size, timeout=10,
                                         command_timeout=60, server_settings=settings,
                                         reset=reset)
    except (TimeoutError, OSError, asyncpg.PostgresError, ValueError) as exc:
        raise StartupError(f"cannot connect to the database {redact(url)}: {exc}") from exc


async def schema_version(conn: Any) -> int:
    """The schema version of the database `conn` is on (0: no schema yet)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(conn: Any, lock_key: int, owner: Owner | None = None) -> int:
    """Apply the migrations the database lacks, in one transaction, under the advisory lock
    (two daemons starting together migrate once; `owner`: the daemon migrating, if one is;
    `daemons.refuse_while_others_run`). Returns the version reached."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, lock_key)
        await conn.execute(_SCHEMA_VERSION)
        current = await schema_version(conn)
        if current > len(MIGRATIONS):
            raise StartupError(f"the database is at schema version {current}, newer than this "
                               f"trigger-local ({len(MIGRATIONS)}): upgrade trigger-local")
        await refuse_while_others_run(conn, current, len(MIGRATIONS), owner or Owner())
        for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT "
                               "(only_row) DO UPDATE SET version = excluded.version", number)
    return len(MIGRATIONS)
