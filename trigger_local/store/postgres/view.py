"""`PgView`: every area of the store over one `PgSql` — a `StoreTx` on a transaction's
connection, a `StoreReader` on the read pool — and a transaction's parts (`savepoint`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from .catalog import PgProjects, PgQueues, PgVersions
from .later import PgSteps, PgStreams
from .pending import Held
from .reach import UNREACHABLE, lost
from .records import PgCheckpoints, PgEvents, PgKv, PgLogs, PgRequests, PgWorkers
from .runs import PgAttempts, PgRuns, PgSnapshots, PgTimers
from .sql import BEGIN, PgSql
from .timed import PgDebounces, PgEnvVars, PgRateLimits, PgSchedules
from .waitpoints import PgBatches, PgWaitpoints


class PgView:
    """Every area over one `PgSql`: a `StoreTx` on the transaction's connection, a
    `StoreReader` on the pool."""

    def __init__(self, sql: PgSql) -> None:
        self.sql = sql
        self.runs = PgRuns(sql)
        self.snapshots = PgSnapshots(sql)
        self.attempts = PgAttempts(sql)
        self.timers = PgTimers(sql)
        self.events = PgEvents(sql)
        self.logs = PgLogs(sql)
        self.waitpoints = PgWaitpoints(sql)
        self.batches = PgBatches(sql)
        self.projects = PgProjects(sql)
        self.versions = PgVersions(sql)
        self.queues = PgQueues(sql)
        self.schedules = PgSchedules(sql)
        self.rate_limits = PgRateLimits(sql)
        self.debounces = PgDebounces(sql)
        self.env_vars = PgEnvVars(sql)
        self.workers = PgWorkers(sql)
        self.checkpoints = PgCheckpoints(sql)
        self.requests = PgRequests(sql)
        self.kv = PgKv(sql)
        self.steps = PgSteps(sql)
        self.streams = PgStreams(sql)
        self._savepoints = 0

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """store/interface.py `StoreTx.savepoint`: a part that raises undoes only its writes.
        Before the transaction's first statement and write kept, the transaction's start is the
        savepoint: a group commit's lone part (most of them) then costs no SAVEPOINT and
        RELEASE round trips, and undoing it means starting the transaction again. Otherwise
        the SAVEPOINT is held back until a statement of the part is sent (`PgSql.held`): a
        part that only keeps writes for the commit (a trigger's start, docs/scaling.md) sends
        no SAVEPOINT and no RELEASE, and undoing it forgets what it kept."""
        sql = self.sql
        if sql.sent == 0 and not sql.turn and not sql.pending and sql.held is None:
            async with self._first_part():
                yield
            return
        # an enclosing part's SAVEPOINT is sent before this one's is held back
        await sql.open_savepoint()
        self._savepoints += 1
        held = sql.held = Held(f"part_{self._savepoints}", sql.pending.mark())
        try:
            yield
        except BaseException:
            sql.pending.undo(held.mark)
            sql.locked.clear()  # (where its runs are is no longer known: runs.py)
            sql.ahead = None  # (what a trigger's reads ahead saw may be undone: start_reads.py)
            if sql.held is held:  # nothing of it was sent: nothing to roll back on the server
                sql.held = None
                raise
            sql.release = None  # a savepoint inside this one: undone with it
            if not lost(sql.conn):
                # a doomed transaction is run again whole: its savepoints do not matter
                with contextlib.suppress(*UNREACHABLE, asyncpg.PostgresError):
                    await sql.conn.execute(f"ROLLBACK TO SAVEPOINT {held.name}")
            raise
        if sql.held is held:  # never sent: nothing to release
            sql.held = None
            return
        # released with the next statements sent together (or by the COMMIT): not a round trip
        # of its own. (Whatever is pending is a savepoint inside this one: released with it)
        sql.release = held.name

    @asynccontextmanager
    async def _first_part(self) -> AsyncIterator[None]:
        """A part that begins the transaction: undoing it starts the transaction again."""
        sql = self.sql
        mark = sql.pending.mark()
        try:
            yield
        except BaseException:
            sql.pending.undo(mark)
            sql.locked.clear()  # (where its runs are is no longer known: runs.py)
            if sql.sent and not sql.doomed and not lost(sql.conn):
                with sql.guard():
                    await sql.conn.execute("ROLLBACK")
                sql.sent, sql.begin = 0, BEGIN  # begun again with the next statement
            sql.release = None  # an inner part's: its savepoint went with the ROLLBACK
            raise
