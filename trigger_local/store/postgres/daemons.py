"""Several daemons on one database (docs/scaling.md): each one's heartbeat row, the runs a
silent daemon held (taken over once its lease has run out), and the wake-up a commit sends to
the other daemons (LISTEN/NOTIFY: a token completed through one daemon resumes, within
milliseconds, a run whose process another daemon holds)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from ...errors import StartupError
from ...statuses import RunStatus
from ..models import Run
from ..sqlite.rows import columns, from_row
from .sql import Owner

#: the channel every commit that recorded events, changed the catalog or set a timer is
#: announced on (the payload: `announcement`)
CHANNEL = "trigger_local_commits"
PROBE_S = 5.0
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
_RUN_COLS = ", ".join(columns(Run))


@dataclass(frozen=True)
class DaemonRow:
    id: str
    host: str
    url: str
    executor: str
    pid: int
    started_at: float
    heartbeat_at: float
    #: seconds since its last heartbeat, by the database's clock
    silent_s: float


async def heartbeat(pool: Any, owner: Owner, *, host: str, url: str, executor: str, pid: int,
                    started_at: float) -> int:
    """Insert or refresh this daemon's row (the database's clock: hosts may disagree); the
    database's schema version, read in the same statement (`moved_past`)."""
    version = await pool.fetchval(
        "INSERT INTO daemons (id, host, url, executor, pid, started_at, heartbeat_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, {_NOW}) ON CONFLICT (id) DO UPDATE SET "
        "host = excluded.host, url = excluded.url, executor = excluded.executor, "
        "pid = excluded.pid, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at "
        "RETURNING (SELECT COALESCE(MAX(version), 0) FROM schema_version)",
        owner.daemon_id, host, url, executor, pid, started_at)
    return int(version)


def moved_past(version: int, known: int) -> str | None:
    """Why a running daemon whose code knows schema version `known` must stop, the database
    being at `version` now (None: it is not past it): a newer trigger-local migrated it (a
    daemon of that trigger-local paused past its lease, unseen by the migration's check)."""
    if version <= known:
        return None
    return (f"the database's schema is at version {version}, past this trigger-local's "
            f"({known}): a newer trigger-local migrated it while this daemon ran. Upgrade "
            "trigger-local here and start the daemon again")


async def daemons(pool: Any) -> list[DaemonRow]:
    """Every daemon's row (`pool`: a pool or a connection)."""
    rows = await pool.fetch(f"SELECT *, {_NOW} - heartbeat_at AS silent_s FROM daemons "
                            "ORDER BY started_at, id")
    return [DaemonRow(**dict(r)) for r in rows]


#: the migration that gave the dequeues their turn (schema.py 10, a lock on `dequeue_turn`): a
#: daemon of before it takes an advisory lock instead, and would dequeue beside one after it
TURN_MIGRATION = 10


async def refuse_while_others_run(conn: Any, current: int, latest: int, owner: Owner) -> None:
    """Migrating from `current` to `latest` needs every other daemon stopped: each runs the
    code of schema `current` (a daemon migrates at its start, or refuses a schema not its own),
    which does not know what the migrations add (TURN_MIGRATION's turn, the `packets` table
    of 14 that an older daemon would not write packets to). StartupError while another one's
    heartbeat is fresh (within the lease)."""
    if not 2 <= current < latest:  # (the `daemons` table: migration 2)
        return
    rows = await conn.fetch(f"SELECT id, host, pid FROM daemons WHERE id != $1 AND "
                            f"heartbeat_at >= {_NOW} - $2 ORDER BY id", owner.daemon_id,
                            owner.lease_s)
    if rows:
        running = ", ".join(f"{r['id']} (pid {r['pid']} on {r['host']})" for r in rows)
        raise StartupError(
            f"the database is at schema version {current}, and these daemons still run on it "
            f"with a trigger-local that does not know version {latest}: {running}. Stop every "
            f"daemon first (a stopped daemon counts for {owner.lease_s:g} s after its last "
            "heartbeat), then run `trigger-local migrate` again, and start the upgraded ones")


async def orphaned_runs(pool: Any, owner: Owner) -> list[Run]:
    """Runs that started on a daemon whose lease has run out (DEQUEUED or EXECUTING there):
    they are interrupted and queued again. A WAITING run stays waiting; when its wait
    completes any daemon may take it (store/postgres/runs.py `queued`) and restarts it."""
    rows = await pool.fetch(
        f"SELECT {_RUN_COLS} FROM runs WHERE status = ANY($1::text[]) AND daemon_id IS NOT NULL "
        "AND daemon_id != $2 AND NOT EXISTS (SELECT 1 FROM daemons d WHERE d.id = runs.daemon_id "
        f"AND d.heartbeat_at >= {_NOW} - $3)",
        [RunStatus.DEQUEUED, RunStatus.EXECUTING], owner.daemon_id, owner.lease_s)
    return [from_row(Run, r) for r in rows]


@dataclass(frozen=True)
class Commit:
    """What a commit announced: versions or projects changed (`catalog`), the earliest timer
    it set (`due_at`: a delayed run, a wait's end, a schedule's tick, ...), or that the
    listener (re)connected and may have missed announcements (`reconnected`)."""

    catalog: bool = False
    due_at: float | None = None
    reconnected: bool = False


#: how long after its hello a daemon looks once more, for commits of the others that were
#: not announced because they had not heard the hello yet (`Listener.step`)
HELLO_LOOK_S = 1.0


class Others:
    """Whether another daemon shares the database now: a commit is announced (NOTIFY) only
    then. With one daemon, its own listener would be the only one to get each announcement, on
    the commit's path: the server would queue it and wake the listener's process, and the
    daemon read and drop it (some 50 us per commit). Another daemon is seen by its heartbeat
    row, fresh within the lease (`note`, at each heartbeat round and when the listener
    connects), and by anything it announces — its commits, and the hello it sends as soon as
    its listener listens, which the others hear within milliseconds."""

    def __init__(self, owner: Owner, on_back: Callable[[], None]) -> None:
        self.owner, self.on_back = owner, on_back
        self._until = -math.inf  # (monotonic)
        #: what the commits not announced since another daemon was last believed would have
        #: said, `(catalog, due_at)` merged (`skip`): told to it once one is seen (`on_back`)
        self.missed: tuple[bool, float | None] | None = None

    def alive(self) -> bool:
        return time.monotonic() < self._until

    def skip(self, catalog: bool, due_at: float | None) -> None:
        """A commit not announced (alone, as far as known): remembered for `seen`."""
        if self.missed is not None:
            was_catalog, was_due = self.missed
            catalog = catalog or was_catalog
            due_at = was_due if due_at is None else due_at if was_due is None \
                else min(due_at, was_due)
        self.missed = (catalog, due_at)

    def seen(self) -> None:
        """Another daemon showed it is alive: believed for a lease (its heartbeat renews it).
        Seen after none was believed there (a new one, or one whose heartbeat was silent for
        longer than the lease and came back): `on_back`, which tells the others what the
        commits not announced meanwhile would have said, once they landed, or says hello —
        they may have stopped believing in this one too (a pause of its own), and hearing
        it they tell what they did not announce."""
        back = not self.alive()
        self._until = time.monotonic() + self.owner.lease_s
        if back:
            self.on_back()

    def note(self, rows: list[DaemonRow]) -> None:
        """The daemons' rows: another one's fresh heartbeat says it is alive."""
        if any(r.id != self.owner.daemon_id and r.silent_s < self.owner.lease_s for r in rows):
            self.seen()


def hello(daemon_id: str) -> str:
    """NOTIFY's payload of a daemon whose listener (re)connected: it listens now, so the others
    announce their commits to it from then on (`Others`)."""
    return f"{daemon_id}|hello|"


def announcement(daemon_id: str, catalog: bool, due_at: float | None) -> str:
    """NOTIFY's payload: `daemon id|catalog|due time` (empty fields when not)."""
    return f"{daemon_id}|{'catalog' if catalog else ''}|{'' if due_at is None else repr(due_at)}"


def parse(payload: str) -> tuple[str, Commit]:
    """The sender and what it announced (`announcement`'s inverse)."""
    sender, _, rest = payload.partition("|")
    what, _, due = rest.partition("|")
    try:
        due_at = float(due) if due else None
    except ValueError:
        due_at = None
    return sender, Commit(catalog=what == "catalog", due_at=due_at)


class Listener:
    """LISTEN on its own connection; `on_commit(commit)` whenever another daemon committed,
    and with `Commit(catalog=True, reconnected=True)` after each connection: announcements
    may have been missed meanwhile."""

    def __init__(self, url: str, owner: Owner, on_commit: Callable[[Commit], None],
                 others: Others) -> None:
        self.url, self.owner, self.on_commit, self.others = url, owner, on_commit, others
        self._conn: Any = None
        self._lost = asyncio.Event()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        sender, commit = parse(payload)
        if sender == self.owner.daemon_id:
            return
        self.others.seen()
        if payload != hello(sender):
            self.on_commit(commit)

    async def step(self) -> None:
        """One connection's life: connect, listen until it is lost (a supervised loop)."""
        self._lost.clear()
        self._conn = await asyncpg.connect(self.url, timeout=10)
        try:
            self._conn.add_termination_listener(lambda _c: self._lost.set())
            await self._conn.add_listener(CHANNEL, self._heard)
            # listening: the daemons alive now (their rows), and a hello to them, so that
            # they announce their commits to this one (`Others`); then a look, and another
            # once they heard the hello (a commit of theirs decided before went unannounced)
            self.others.note(await daemons(self._conn))
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL,
                                     hello(self.owner.daemon_id))
            self.on_commit(Commit(catalog=True, reconnected=True))
            if await self._lost_within(HELLO_LOOK_S):
                return
            self.on_commit(Commit(catalog=True, reconnected=True))
            while True:
                # a cut link closes nothing: ask, so that a dead connection is noticed
                await asyncio.wait_for(self._conn.execute("SELECT 1"), PROBE_S)
                if await self._lost_within(PROBE_S):
                    return
        finally:
            await self.close()

    async def _lost_within(self, seconds: float) -> bool:
        """Whether the connection is lost, waiting up to `seconds` for it to be."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._lost.wait(), seconds)
        return self._lost.is_set()

    def stop(self) -> None:
        self._lost.set()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._lost.set()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
