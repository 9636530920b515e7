"""The SQL helpers every PostgreSQL area shares, composed in like store/sqlite/sql.py's: one
row, all rows, a guarded UPDATE, a cursor page. Statements are written with `?` marks, as for
SQLite (so `Where` and the status groups of store/sqlite/sql.py serve both), and turned into
PostgreSQL's `$1, $2, ...` once per statement text."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ...errors import TransactionRetryError
from ..sqlite.rows import columns, encode_changes, to_row
from ..sqlite.sql import Where
from . import dequeue_reads, start_reads
from .inline import inline
from .pending import Fold, Held, Pending
from .prepared import Prepared
from .reach import reachable
from .start_reads import Ahead

Params = Sequence[Any]
BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"
#: an exclusive transaction's (store.py): read committed, each statement seeing the latest
BEGIN_EXCLUSIVE = "BEGIN ISOLATION LEVEL READ COMMITTED"
#: the dequeues' turn (store.py): a table lock, held until the transaction ends. Unlike an
#: advisory lock (a function called by a SELECT), LOCK TABLE takes no snapshot, so a
#: serializable transaction that begins with it takes its snapshot once the lock is held
TURN = "LOCK TABLE dequeue_turn IN EXCLUSIVE MODE"
#: a dequeue's lock and first reads in one round trip: the dequeues' turn, then the reads in a
#: snapshot of their own, taken once the lock is held (under read committed, each statement of
#: a volatile function takes one; never in a serializable transaction, whose snapshot would be
#: the calling statement's, taken before the lock). A temporary function, made on the
#: exclusive transactions' connection (store.py `_held`): it reads what this code reads,
#: whatever the schema's version, and its statements' plans are kept for the session (a query
#: run through EXECUTE is planned at every call: slower than the prepared statement it replaces)
LOCKED_READ = f"""CREATE OR REPLACE FUNCTION pg_temp.trigger_local_locked_read()
    RETURNS TEXT LANGUAGE plpgsql VOLATILE {dequeue_reads.PLAN} AS $$
BEGIN
    {TURN};
    RETURN ({dequeue_reads.AS_JSON});
END $$"""


@functools.lru_cache(maxsize=2048)
def dollar(sql: str) -> str:
    """`?` marks to `$n` (the statements carry no `?` of their own: values are parameters)."""
    parts = sql.split("?")
    out = [parts[0]]
    for n, part in enumerate(parts[1:], start=1):
        out.append(f"${n}{part}")
    return "".join(out)


def insert_sql(table: str, cls: type, conflict: str = "") -> str:
    """`INSERT INTO table (cols) VALUES (?, ...)` for the dataclass `cls`'s columns, in the order
    of `values(obj)`; `conflict` is an `ON CONFLICT ...` clause."""
    cols = columns(cls)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            f"{' ' + conflict if conflict else ''}")


def values(obj: Any) -> list[Any]:
    """The row of a record (JSON as text, booleans as 0/1), in `insert_sql`'s column order."""
    return list(to_row(obj).values())


def tagged(where: Where, table: str, tags: Sequence[str] | None) -> None:
    """Rows of `table` (runs, waitpoints) carrying any of `tags`, found in its tags table
    (`run_tags`, `waitpoint_tags`: schema_lists.py) rather than in every row's JSON."""
    if tags:
        one = table.removesuffix("s")
        where.add(f"{table}.id IN (SELECT {one}_id FROM {one}_tags WHERE tag = ANY(?::text[]))",
                  list(tags))


class Owner:
    """Which daemon this store serves, and how long another daemon's heartbeat may be silent
    before what it holds is taken over (docs/scaling.md). `daemon_id` "" is a store of its own
    (the contract tests, `migrate`)."""

    def __init__(self, daemon_id: str = "", lease_s: float = 30.0) -> None:
        self.daemon_id, self.lease_s = daemon_id, lease_s

    def held_here_or_orphaned(self, table: str) -> tuple[str, tuple[Any, ...]]:
        """A condition on `table.daemon_id`: held by no daemon, by this one, or by one whose
        lease has run out (database time, so the hosts' clocks do not matter)."""
        return (f"({table}.daemon_id IS NULL OR {table}.daemon_id = ? OR NOT EXISTS "
                f"(SELECT 1 FROM daemons d WHERE d.id = {table}.daemon_id AND d.heartbeat_at >= "
                "EXTRACT(EPOCH FROM clock_timestamp()) - ?))", (self.daemon_id, self.lease_s))


#: every column that holds a timer (the timer queries of runs.py read them)
TIMERS = ("delay_until", "expires_at", "deadline_at", "complete_after", "timeout_at",
          "next_run_at", "blocked_until")


class PgSql:
    """Statements on a connection (a transaction's) or on the pool (reads: each statement on
    whichever connection is free, seeing the latest committed state)."""

    def __init__(self, conn: Any, owner: Owner | None = None, *, writes: bool = False) -> None:
        self.conn = conn
        self.owner = owner or Owner()
        #: a transaction's (store.py `tx`): its reads may lock rows (`FOR UPDATE`)
        self.writes = writes
        #: the advisory lock that orders event appends (store.py)
        self.events_lock: tuple[int, int] = (0, 0)
        #: the events and other writes kept for the commit (pending.py)
        self.pending = Pending()
        #: the statements prepared on the transaction's connection (prepared.py; store.py)
        self.prepared = Prepared()
        #: an exclusive transaction (a dequeue), and its first reads (dequeue_reads.py)
        self.exclusive = False
        #: the transaction takes the dequeues' turn (store.py): an exclusive one, or a
        #: serializable one that dequeues too (a trigger starting its run at once)
        self.turn = False
        self.dequeue_answers: dict[str, list[Any]] | None = None
        #: the catalog's generation as a dequeue last read it (catalog.py `generation`)
        self.catalog_seen: int | None = None
        #: the transaction's BEGIN (and an exclusive one's lock), held back to go with its
        #: first statement (store.py `tx`); `next_begin` goes with its COMMIT
        self.begin: str | None = None
        self.next_begin = BEGIN
        #: whether the exclusive transactions' connection has the function that takes their
        #: turn and reads (LOCKED_READ)
        self.locked_read = False
        #: the runs a transaction taking the turn locked (`PgRuns.queued`), where each is: by id,
        #: (snapshot id, status, project, queue)
        self.locked: dict[str, tuple[str, str, str | None, str]] = {}
        #: the serializable transactions' connection has START_READ (start_reads.py)
        self.start_read = False
        #: what a trigger that starts its run read ahead (start_reads.py), while it holds
        self.ahead: Ahead | None = None
        #: a part's SAVEPOINT not sent yet (view.py): it goes before the part's first statement
        self.held: Held | None = None
        #: a savepoint whose part ended well, released by the next statements sent together
        #: (`_send_kept`) or by the COMMIT, rather than in a round trip of its own (store.py)
        self.release: str | None = None
        #: statements sent since the transaction began (a savepoint before the first is none)
        self.sent = 0
        #: a statement of this transaction was refused for a conflict: whatever a part that
        #: caught it did next, the transaction must be run again (store.py `tx`)
        self.doomed = False
        #: the earliest timer this transaction set: announced at its commit, so the other
        #: daemons' dispatchers fire it on time too (store.py, peers.py's `Peers`)
        self.due_at: float | None = None
        #: events were appended in this transaction: announce the commit (store.py)
        self.wrote_events = False
        #: a version or project changed: the other daemons reload what they cache of them
        self.wrote_catalog = False

    def note_timers(self, fields: Mapping[str, Any]) -> None:
        """Note the timer columns among `fields` (a row or an update's changes)."""
        for name in TIMERS:
            at = fields.get(name)
            if at is not None and (self.due_at is None or at < self.due_at):
                self.due_at = float(at)

    def note_timers_of(self, record: Any) -> None:
        self.note_timers({name: getattr(record, name, None) for name in TIMERS})

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """`reachable()`, remembering a conflict (`doomed`)."""
        try:
            with reachable():
                yield
        except TransactionRetryError:
            self.doomed = True
            raise

    async def _before(self, sql: str) -> None:
        """Count the statement; send the held-back BEGIN (and a part's SAVEPOINT) first, and
        the kept writes if it reads or writes their tables (the transaction sees its own
        writes)."""
        await self.open_savepoint()
        self.sent += 1
        if self.pending and self.pending.touches(sql):
            await self._send_kept()
        elif self.begin:
            await self._send(self.take_begin())

    def take_begin(self) -> str:
        begin, self.begin = self.begin or "", None
        return begin

    async def _send(self, statements: str) -> str:
        """Statements without parameters, in one round trip; the last one's status."""
        with self.guard():
            status: str = await self.conn.execute(statements)
        return status

    async def open_savepoint(self) -> None:
        """Send the part's held-back SAVEPOINT (`held`), after what earlier parts kept: sent
        by one of this part's statements, its rollback would undo them too. What the part kept
        so far stays kept (one round trip: the BEGIN, the earlier parts' writes, SAVEPOINT)."""
        held, self.held = self.held, None
        if held is None:
            return
        part = self.pending.split(held.mark)
        self.sent += 1
        await self._send_kept(then=f"SAVEPOINT {held.name}")
        held.mark = self.pending.mark()
        self.pending.restore(part)

    def ahead_valid(self) -> Ahead | None:
        """What was read ahead (start_reads.py), if nothing was sent since; else forgotten."""
        if self.ahead is not None and self.ahead.sent != self.sent:
            self.ahead = None
        return self.ahead

    async def _send_kept(self, notify: tuple[str, str] | None = None,
                         commit: bool = False, then: str | None = None) -> None:
        """The held-back BEGIN, the kept writes (pending.py) with `notify` (channel, payload),
        and the COMMIT with the next transaction's BEGIN if `commit`: one round trip when
        every value can be written in (inline.py), else one per statement."""
        kept = self.pending.statements(self.events_lock, notify)
        # each prepared once on this connection, then executed by name (prepared.py)
        written = self.prepared.statements(kept)
        head = [self.take_begin()] if self.begin else []
        if self.release and not commit:  # (a COMMIT releases every savepoint)
            head.append(f"RELEASE SAVEPOINT {self.release}")
        self.release = None
        # the next transaction begins with this one's commit (store.py `_held`)
        tail = ["COMMIT", self.next_begin] if commit else [then] if then else []
        if written is not None:  # (a stale statement: the transaction is run again, `guard`)
            with self.guard(), self.prepared.sending():
                if head or written or tail:
                    await self._send("; ".join([*head, *written, *tail]))
            return
        for step in head:
            await self._send(step)
        for text, params in kept:
            with self.guard():
                await self.conn.execute(dollar(text), *params)
        if tail:
            await self._send("; ".join(tail))

    async def commit(self, notify: tuple[str, str] | None) -> None:
        """Send the kept writes and `notify` with the COMMIT and the next transaction's BEGIN
        (and this one's BEGIN, if nothing was sent yet). A transaction that sent nothing and
        kept nothing sends nothing."""
        if self.begin and not self.pending and notify is None:
            self.begin = None
            return
        # shielded: a cancelled request cannot leave its commit half-sent
        await asyncio.shield(self._send_kept(notify, commit=True))

    async def _dequeue_read(self, sql: str) -> list[Any] | None:
        """A dequeue's first reads, fetched together (dequeue_reads.py); None: read again.
        In an exclusive transaction begun by the last commit, its lock and those reads go in
        one round trip (LOCKED_READ); a trigger that starts its run may have read them ahead
        (start_reads.py)."""
        ahead = self.ahead_valid()
        if ahead is not None:
            return ahead.answer(sql)
        if self.dequeue_answers is None:
            await self.open_savepoint()
            if self.locked_read and self.exclusive and self.begin == TURN:
                self.begin, self.sent = None, self.sent + 1
                with self.guard():
                    found = await self.conn.fetchval("SELECT pg_temp.trigger_local_locked_read()")
                self.dequeue_answers = dequeue_reads.answers_of(found)
            else:
                self.dequeue_answers = dequeue_reads.answers(
                    await self.one(dequeue_reads.TOGETHER))
        return self.dequeue_answers.pop(sql, None)

    async def one(self, sql: str, params: Params = ()) -> Any:
        if sql == start_reads.QUEUE and self.start_read and self.turn and not self.exclusive \
                and not self.pending and self.ahead is None and params[1] == params[2]:
            return await self._read_ahead(params)
        await self._before(sql)
        with self.guard():
            return await self.conn.fetchrow(dollar(sql), *params)

    async def _read_ahead(self, params: Params) -> Any:
        """A queue's read with the dequeue's six (start_reads.py): the turn's LOCK goes first,
        alone (a LOCK takes no snapshot; the call's snapshot is the transaction's)."""
        await self._before(start_reads.CALL)
        project, name, _ = params
        with self.guard():
            found = await self.conn.fetchval(start_reads.CALL, project, name)
        queue, self.ahead = start_reads.read(found, self.sent)
        return queue

    async def all(self, sql: str, params: Params = ()) -> list[Any]:
        if self.turn and sql in dequeue_reads.READS:
            rows = await self._dequeue_read(sql)
            if rows is not None:
                return rows
        await self._before(sql)
        with self.guard():
            return list(await self.conn.fetch(dollar(sql), *params))

    async def value(self, sql: str, params: Params = ()) -> Any:
        await self._before(sql)
        with self.guard():
            return await self.conn.fetchval(dollar(sql), *params)

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; returns how many rows it changed. The transaction's first statement
        goes with its BEGIN, in one round trip (inline.py)."""
        # (not before kept writes it must see: `_before` sends those first)
        await self.open_savepoint()
        first = self.begin and not (self.pending and self.pending.touches(sql))
        written = inline(sql, params) if first else None
        if written is not None:
            self.sent += 1
            status = await self._send(f"{self.take_begin()}; {written}")
        else:
            await self._before(sql)
            with self.guard():
                status = await self.conn.execute(dollar(sql), *params)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def keep(self, table: str, sql: str, params: Params, fold: Fold | None = None) -> None:
        """A write nobody waits for the answer of, of `table`: kept for the commit
        (pending.py). On the pool (a reader's area cast to a writer's) it is sent at once, and
        its read-only session refuses it."""
        if self.writes:
            if start_reads.changes(table):
                self.ahead = None
            self.pending.write(table, sql, params, fold)
        else:
            await self.run(sql, params)

    async def many(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            await self._before(sql)
            with self.guard():
                await self.conn.executemany(dollar(sql), rows)

    async def update(self, table: str, cls: type, key: str, key_value: Any,
                     changes: dict[str, Any], extra_where: str = "",
                     extra: Sequence[Any] = ()) -> bool:
        """`UPDATE table SET changes WHERE key = key_value [extra_where]`: True when a row
        matched (no changes: True at once)."""
        if not changes:
            return True
        return await self.run(*self.update_sql(table, cls, key, key_value, changes, extra_where,
                                               extra)) > 0

    def update_sql(self, table: str, cls: type, key: str, key_value: Any,
                   changes: dict[str, Any], extra_where: str = "",
                   extra: Sequence[Any] = ()) -> tuple[str, tuple[Any, ...]]:
        """`update`'s statement and values (its timers noted)."""
        self.note_timers(changes)
        enc = encode_changes(cls, changes)
        sets = ", ".join(f"{k} = ?" for k in enc)
        return (f"UPDATE {table} SET {sets} WHERE {key} = ?{extra_where}",
                (*enc.values(), key_value, *extra))

    async def update_from(self, table: str, cls: type, key_value: Any, changes: dict[str, Any],
                          old: Sequence[str], extra_where: str = "",
                          extra: Sequence[Any] = ()) -> Any:
        """`UPDATE table SET changes WHERE id = key_value [extra_where]` returning the row's
        columns `old` as they were before it (None: no row matched), in one statement. The
        update also requires them unchanged: under read committed, a row changed meanwhile is
        read again by the UPDATE alone, and then it is not updated rather than counted from
        values it no longer has."""
        self.note_timers(changes)
        enc = encode_changes(cls, changes)
        sets = ", ".join(f"{k} = ?" for k in enc)
        same = " AND ".join(f"{table}.{c} IS NOT DISTINCT FROM o.{c}" for c in old)
        sql = (f"WITH o AS (SELECT {', '.join(old)} FROM {table} WHERE id = ?) "
               f"UPDATE {table} SET {sets} FROM o WHERE {table}.id = ? AND {same}{extra_where} "
               f"RETURNING {', '.join(f'o.{c}' for c in old)}")
        return await self.one(sql, (key_value, *enc.values(), key_value, *extra))

    async def newest_first(self, table: str, cols: str, where: Where, after: str | None,
                           before: str | None, limit: int) -> list[Any]:
        """One cursor page of `table`, newest first (as store/sqlite/sql.py's)."""
        order = "DESC"
        if after:
            where.add(f"(created_at, id) < (SELECT created_at, id FROM {table} WHERE id = ?)",
                      after)
        elif before:
            where.add(f"(created_at, id) > (SELECT created_at, id FROM {table} WHERE id = ?)",
                      before)
            order = "ASC"
        rows = await self.all(f"SELECT {cols} FROM {table} {where.clause()} "
                              f"ORDER BY created_at {order}, id {order} LIMIT ?",
                              (*where.params, limit))
        return rows if order == "DESC" else list(reversed(rows))


def created_between(q: Where, created_from: float | None, created_to: float | None) -> None:
    """Narrow `q` to rows created in [created_from, created_to] (either end open when None)."""
    if created_from is not None:
        q.add("created_at >= ?", created_from)
    if created_to is not None:
        q.add("created_at <= ?", created_to)
