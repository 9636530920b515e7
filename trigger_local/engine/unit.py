"""The unit of work: `Tx`, what every engine part receives first.

A `Tx` is one store transaction (its areas: `tx.runs`, `tx.waitpoints`, ...), the time it
happens at (`tx.now`), the engine's long-lived context (`tx.ctx`: settings, projects, the
version cache, whether the executor can checkpoint), and the events it recorded.

`tx.record(event)` is the one way to record a change: it queues the event, whose durable
`events` row the unit writes with the others just before it commits (`Tx.write_events`), and
which the engine publishes on the hub once the transaction has committed (engine/front.py).
The events area itself is not on `Tx`: nothing else writes event rows, and nothing else
publishes.

Group commit (`GroupCommit`, below): the units of work that arrive together share one
transaction. On this 2-CPU machine a transaction's fixed cost (BEGIN, the commit's WAL write of
every page it touched, the lock, the loop turn after it) is a good part of a completion's. When
several task processes report at once, `GroupCommit.run` queues each caller's part; one flush
takes every part waiting at that moment and runs them one after another in a single transaction,
each inside a savepoint of its own, so a part that raises (a late completion's ConflictError)
undoes only its own writes and events and fails only its own caller. Every caller is answered
after the commit: what it was told is durable before it is told. If the commit itself fails (a
full disk), every caller of the batch gets that error.

A part that is known to be alone — the dispatcher starting the one run an idle daemon was given
(`GroupCommit.alone`) — is committed at once in its caller's task when no other part waits or is
being committed: the window that gathers concurrent callers (a task of its own, one more loop
turn) is for throughput, and a lone start only waits in it (issue #13's trigger→start).

A flush may also start runs in the transaction that freed their slots (`GroupCommit.then`, set
by the dispatcher: engine/handover.py): after the batch's parts, the hook takes the runs that
may start now and starts them, each as a part of the same batch (`Join`), answered after the
same commit.

Conflicts: a store that runs several daemons' transactions at once (PostgresStore) may refuse
one that touched the same records as another (`TransactionRetryError`, nothing of it
committed). `retrying` and `GroupCommit` then run the whole unit of work again, from a fresh
`Tx`, after a short random pause; a part never sees the refusal (it is not its error).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from ..config import DaemonSettings
from ..errors import TransactionLostError, TransactionRetryError
from ..store.interface import StoreTx
from ..store.models import Run, Version
from .due import (
    DueTimes,
    Note,
    noting_rate_limits,
    noting_runs,
    noting_schedules,
    noting_waitpoints,
)
from .events import Event
from .log_cap import LogCaps, Pending
from .placing import Placer
from .project_state import Projects
from .suspension import CheckpointCapability


@dataclass
class EngineContext:
    """What the engine parts read besides the store; it outlives every transaction."""

    settings: DaemonSettings
    projects: Projects = field(default_factory=Projects)
    #: versions never change once registered: each is read once (engine/versions.py)
    versions: dict[str, Version] = field(default_factory=dict)
    #: the executor, asked whether a waiting run can be checkpointed (engine/suspension.py)
    capability: CheckpointCapability | None = None
    #: when the dispatcher must next fire timers: the timers each unit set or cleared, applied
    #: once it committed (engine/due.py)
    due: DueTimes = field(default_factory=DueTimes)
    #: runs the dispatcher took off their queues in memory only, until their start's unit of
    #: work moves them QUEUED → EXECUTING (engine/dequeue.py)
    reserved: dict[str, Run] = field(default_factory=dict)
    #: a store daemons share (PostgreSQL): a batch whose run ended is completed after the
    #: commit, in a unit of its own (engine/endings.py says why), and a group commit hands no
    #: slot over (engine/handover.py: the dequeue must be exclusive)
    shared_store: bool = False
    #: the executor's warm places, where a trigger on an idle daemon starts its run in its own
    #: transaction (engine/starting.py); None: every run goes through the dispatcher
    placer: Placer | None = None
    #: whether the last dequeue to run saw a QUEUED run at all (engine/dequeue.py): the
    #: dispatcher skips a round that only room woke when it saw none (dispatch/dispatcher.py)
    queued_seen: bool = True
    #: each attempt's log volume against its cap (engine/log_cap.py)
    log_caps: LogCaps = field(default_factory=LogCaps)
    #: each run as the start of its attempt left it, while that start is its last move: its
    #: completion needs no read of the row (engine/attempts.py, `finish_current`). Never on a
    #: shared store: another daemon's write that keeps the snapshot id is not seen here
    started: dict[str, Run] = field(default_factory=dict)
    #: runs written with their snapshot id kept (metadata, a RUN waitpoint) since the dequeue
    #: that read them: a start moves the dispatcher's copy, which would not have that write, so
    #: it leaves no `started` copy; cleared by the run's next dequeue and by its end
    changed_in_place: set[str] = field(default_factory=set)


class Tx:
    """One unit of work; see the module docstring."""

    def __init__(self, store: StoreTx, now: float, ctx: EngineContext) -> None:
        self.now = now
        self.ctx = ctx
        self.savepoint = store.savepoint  # a part that can fail alone (GroupCommit, below)
        self.published: list[Event] = []
        self.due_notes: list[Note] = []  # applied to `ctx.due` after the commit
        self.batch_checks: list[str] = []  # batches to complete after it (engine/endings.py)
        self.log_counts = Pending()  # applied to `ctx.log_caps` after the commit
        self.held_left = False  # a `fresh` dequeue stopped at a held run (engine/dequeue.py)
        self._events = store.events
        # the areas that hold timers note each timer set or cleared through them (engine/due.py)
        note = self.due_notes.append
        # (a shared store keeps no start copies: nothing to note for them)
        self.runs = noting_runs(store.runs, note, ctx.started,
                                None if ctx.shared_store else ctx.changed_in_place)
        self.snapshots = store.snapshots
        self.attempts = store.attempts
        self.timers = store.timers
        self.logs = store.logs
        self.waitpoints = noting_waitpoints(store.waitpoints, note)
        self.batches = store.batches
        self.projects = store.projects
        self.versions = store.versions
        self.queues = store.queues
        self.schedules = noting_schedules(store.schedules, note)
        self.rate_limits = noting_rate_limits(store.rate_limits, note)
        self.debounces = store.debounces
        self.env_vars = store.env_vars
        self.workers = store.workers
        self.checkpoints = store.checkpoints
        self.requests = store.requests
        self.kv = store.kv
        self.steps = store.steps
        self.streams = store.streams

    def committed(self) -> None:
        """The transaction committed: what it noted for memory holds (due times, log counts)."""
        self.ctx.due.apply(self.due_notes)
        self.ctx.log_caps.apply(self.log_counts)

    @property
    def settings(self) -> DaemonSettings:
        return self.ctx.settings

    async def record(self, event: Event) -> None:
        """Store `event` (unless it is a notice) and publish it after the commit. Its row is
        written with the unit's others when the unit ends (`write_events`)."""
        self.published.append(event)

    async def record_many(self, events: list[Event]) -> None:
        """`record` of each of `events`, in order."""
        self.published.extend(events)

    async def write_events(self) -> None:
        """The rows of the events recorded (and not undone with a part that failed), in the
        order they were recorded, written together just before the commit: one `executemany`
        on SQLite for a group commit's starts and completions (issue #13); nothing in a unit
        of work reads the events it wrote."""
        now = self.now
        rows = [(e.subject_run, stored_as, now, e.data())
                for e in self.published if (stored_as := e.type) is not None]
        if rows:
            await self._events.append_many(rows)


P = ParamSpec("P")
T = TypeVar("T")
Part = Callable[..., Awaitable[Any]]
Unit = Callable[[], AbstractAsyncContextManager[Tx]]
#: how often a refused unit of work is run again before the refusal goes to the caller (a 503)
RETRIES = 50


async def retrying(unit: Unit, part: Callable[Concatenate[Tx, P], Awaitable[T]],
                   *args: P.args, **kwargs: P.kwargs) -> T:
    """`part(tx, ...)` in a unit of work opened by `unit`, run again while the store refuses
    it for a conflict (the module docstring)."""
    for tries in itertools.count(1):
        try:
            async with unit() as tx:
                return await part(tx, *args, **kwargs)
        except TransactionRetryError:
            await _pause_before_retry(tries)
    raise AssertionError("unreachable")


async def _pause_before_retry(tries: int) -> None:
    """Re-raise once RETRIES refusals in a row; else pause a random while, longer each time,
    so that the transactions that conflicted do not meet again at once."""
    if tries >= RETRIES:
        raise
    await asyncio.sleep(random.uniform(0, min(0.1, 0.002 * 2 ** min(tries, 6))))


@dataclass
class _Job:
    part: Part
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = field(default=None)


#: runs `part(tx, *args)` as a part of the batch being committed, at once and in a savepoint of
#: its own; the future is answered after the commit, as a caller of `GroupCommit.run` is
Join = Callable[..., Awaitable["asyncio.Future[Any]"]]
#: a hook run in every batch's transaction after its parts (`GroupCommit.then`)
Then = Callable[[Tx, Join], Awaitable[None]]


#: set (`GroupCommit.alone`) by a caller whose part is the only one it makes: see the docstring
_ALONE: ContextVar[bool] = ContextVar("group_commit_alone", default=False)


class GroupCommit:
    """Runs parts in shared units of work opened by `unit` (the engine front's `_unit`)."""

    def __init__(self, unit: Callable[[], AbstractAsyncContextManager[Tx]]) -> None:
        self._unit = unit
        self._waiting: list[_Job] = []
        self._flushing: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self._committing_now = False  # a lone part is being committed in its caller's task
        self.batches = 0  # transactions committed, for tests and the profile
        #: run in each batch's transaction after its parts (engine/handover.py); None: nothing
        self.then: Then | None = None

    @staticmethod
    @contextmanager
    def alone() -> Iterator[None]:
        """Parts run inside this block (in this task) are committed at once when nothing else
        waits or is being committed, instead of in the next flush (the module docstring)."""
        token = _ALONE.set(True)
        try:
            yield
        finally:
            _ALONE.reset(token)

    async def run(self, part: Callable[Concatenate[Tx, P], Awaitable[T]], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """`part(tx, *args, **kwargs)` in a transaction shared with the parts queued meanwhile;
        returns (or raises) what the part did, once the transaction has committed."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        job = _Job(part, args, kwargs, done)
        if _ALONE.get() and self._flushing is None and not self._committing_now \
                and not self._waiting:
            await self._commit_now(job)
        else:
            self._waiting.append(job)
            self._start_flush()
        return cast(T, await done)

    def submit(self, part: Callable[Concatenate[Tx, P], Awaitable[T]], *args: P.args,
               **kwargs: P.kwargs) -> asyncio.Future[T]:
        """`run`'s part, queued now: the future is answered once its transaction committed.
        Several submitted together and awaited in turn share a commit, and their caller goes on
        one loop turn after it, as no gather's tasks stand in between (issue #13)."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Job(part, args, kwargs, done))
        self._start_flush()
        return done

    def _start_flush(self) -> None:
        if self._flushing is None and not self._committing_now:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _commit_now(self, job: _Job) -> None:
        """`job` alone, in this task; parts that arrive meanwhile (a store that yields during
        its transaction: PostgreSQL) wait for the flush that follows it."""
        self._committing_now = True
        try:
            await self._commit([job])
        finally:
            self._committing_now = False
            if self._waiting:
                self._start_flush()

    async def _flush(self) -> None:
        try:
            # one more turn of the loop: requests that arrived with this one reach `run` first
            await asyncio.sleep(0)
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._commit(batch)
        except BaseException as exc:  # cancelled (the daemon stops): nobody waits forever
            for job in self._waiting:
                _answer(job.done, None, exc)
            self._waiting = []
            raise
        finally:
            self._flushing = None

    async def _commit(self, batch: list[_Job]) -> None:
        joined: list[_Job] = []  # the parts the hook added (`then`), in the try that committed
        try:
            for tries in itertools.count(1):
                try:
                    await self._commit_once(batch, joined)
                    break
                except TransactionRetryError:
                    for job in joined:  # that try's parts never happened: their callers learn it
                        _answer(job.done, None, TransactionRetryError("run again"))
                    joined.clear()
                    await _pause_before_retry(tries)
        except BaseException as exc:  # the commit failed: nobody's part is done
            for job in batch + joined:
                _answer(job.done, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        # the hand-over's starts first: the pool queues their assignments in the same loop turn
        # as the completions' answers are written, so a process's channel sends both in one
        # message (api/channel.py)
        for job in joined + batch:
            _answer(job.done, job.result, job.error)

    async def _commit_once(self, batch: list[_Job], joined: list[_Job]) -> None:
        async with self._unit() as tx:
            for job in batch:
                await _run_part(tx, job)
            if self.then is not None:
                await self.then(tx, partial(_join, tx, joined))
            self.batches += 1


async def _join(tx: Tx, joined: list[_Job], part: Part, *args: Any) -> asyncio.Future[Any]:
    """`Join` (above): `part` run now, in `tx`, answered with the batch."""
    job = _Job(part, args, {}, asyncio.get_running_loop().create_future())
    await _run_part(tx, job)
    joined.append(job)
    return job.done


async def _run_part(tx: Tx, job: _Job) -> None:
    published, noted, checks = len(tx.published), len(tx.due_notes), len(tx.batch_checks)
    counted = tx.log_counts.mark()
    job.result, job.error = None, None  # from a try the store refused
    try:
        async with tx.savepoint():
            job.result = await job.part(tx, *job.args, **job.kwargs)
    except TransactionRetryError:
        raise  # the whole transaction is run again (GroupCommit._commit)
    except TransactionLostError as lost:
        raise lost.cause from None  # no part of the batch stands: each caller gets its error
    except Exception as exc:
        del tx.published[published:]  # its events never happened, its timers were never set
        del tx.due_notes[noted:]
        del tx.batch_checks[checks:]
        tx.log_counts.undo(counted)  # nor did it store or drop log lines
        job.error = exc


def _answer(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.done():  # the caller went away (its request was cancelled); the work stands
        return
    if error is None:
        done.set_result(result)
    elif isinstance(error, asyncio.CancelledError):
        done.cancel()
    else:
        done.set_exception(error)
