"""Resuming in place: a run whose wait a timer completed goes on at once in the shared process
that holds it, in the transaction that fired the timer (issue #13, 1,000 concurrent timers).

The usual way back from a wait takes three transactions and two dispatcher rounds: the timer
completes the waitpoint and queues the run (`queued_held`), a dispatcher round takes it
(DEQUEUED), and its resume moves it to EXECUTING before the process is told. With 1,000
`wait.for_(1 s)` at once those rounds were the lateness. Here the timer's unit of work moves
the run WAITING → EXECUTING itself (`RunResumed`, from WAITING) when that cannot change who gets
a slot, and the executor, on that event — published once the unit committed — tells the process
with the wait's result (`RunResumed.extra["result"]`, which is not stored).

It does so only when the answer of a dequeue is certain to be the same:
- the store is not shared (SQLite): on PostgreSQL only the dequeues' turn may make a run start
  to count as running (docs/scaling.md); this serializable transaction does not take it, so
  another daemon's dequeue (read committed, in the turn) would not see this run go on, nor
  would this transaction see that dequeue — two runs under a limit of 1;
- the run is held waiting in a shared process of this daemon (the executor says so: not
  checkpointed, not evicted, not a run of another daemon);
- its queue is not paused and has no rate limit, its project is online;
- the global concurrency has room for it and for every QUEUED run besides (so no queued run
  can lose a slot to it, whatever their order);
- a queue with a concurrency limit has room under it for the run's key and no QUEUED run.
Otherwise the run is queued (`queued_held`) as before and the dispatcher resumes it.

A shared process keeps the timer of its runs' short duration waits too, and goes on at once when
it fires (engine/waits.py `by_process`, docs/waits.md): the waitpoint completes the same way,
and the run's move is the same, but nobody is told (the process knows): its RunResumed carries
no result and `resumed_by: process`, so the executor sends no resume message.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from ..store.models import EXECUTING, QUEUED, Run, Waitpoint
from ..store.run_areas import RunningCounts
from .dequeue import running_with_reserved
from .events import RunResumed
from .runs import move
from .states import K_HELD
from .unit import Tx

#: what a RunResumed's `extra` carries for the executor only (RunResumed.data drops it); None:
#: the run's process resumed it itself, nothing to send
RESULT = "result"


def deadline(run: Run, now: float) -> float | None:
    """When `run`'s max duration runs out if it executes from `now` on: time spent waiting
    does not count."""
    return now + max(0.0, run.max_duration_s - run.executed_s) if run.max_duration_s else None


_ROOMS: WeakKeyDictionary[Tx, InPlace] = WeakKeyDictionary()


def room_of(tx: Tx) -> InPlace:
    """One InPlace for every part of `tx`: a group commit of many processes' timer frames reads
    the room once (a part whose savepoint is undone keeps its slot counted: fewer go on in
    place, never more)."""
    room = _ROOMS.get(tx)
    if room is None:
        room = _ROOMS[tx] = InPlace()
    return room


class InPlace:
    """The room one unit of work has for runs resuming in place; read from the store the first
    time a run asks, then counted in memory as runs take it."""

    def __init__(self) -> None:
        self._loaded = False
        self._running: RunningCounts = {}
        self._busy = 0  # running, reserved, queued and resumed here: what the global limit sees
        self._paused: set[tuple[str, str]] = set()
        self._limits: dict[tuple[str, str], int] = {}
        self._rated: set[tuple[str, str]] = set()
        self._queued: set[tuple[str, str]] | None = None  # read only if a queue has a limit
        #: runs whose process resumed them itself (its own timer): no resume message for them
        self.told: set[str] = set()
        self.resumed: set[str] = set()  # the runs this room let go on

    async def resume(self, tx: Tx, run: Run, wp: Waitpoint, result: dict[str, Any]) -> None:
        """WAITING → EXECUTING in the process that holds it (`admits` said so)."""
        data: dict[str, Any] = {"attempt": run.attempt_count, "worker_id": run.worker_id,
                                "waitpoint_id": wp.id, RESULT: result}
        if run.id in self.told:
            data.update({RESULT: None, "resumed_by": "process"})
        await move(tx, run, EXECUTING, deadline_at=deadline(run, tx.now), event=RunResumed,
                   data=data)
        self.resumed.add(run.id)

    async def admits(self, tx: Tx, run: Run) -> bool:
        """Whether `run` (WAITING, its wait just completed) may go on in its process now; if so,
        its slot is taken."""
        capability = tx.ctx.capability
        if tx.ctx.shared_store:  # outside the dequeues' turn: see the module's docstring
            return False
        if capability is None or not run.worker_id or run.snapshot_kind != K_HELD \
                or not capability.shares_process(run.id):
            return False
        if not self._loaded:
            await self._load(tx)
        project = run.project or ""
        queue = (project, run.queue)
        if queue in self._paused or queue in self._rated \
                or not tx.ctx.projects.online(project) \
                or self._busy + 1 > tx.settings.concurrency:
            return False
        slot = (project, run.queue, run.concurrency_key)
        limit = self._limits.get(queue)
        if limit is not None:
            if self._running.get(slot, 0) >= limit:
                return False
            if self._queued is None:
                self._queued = set(await tx.runs.queued_queues())
            if queue in self._queued:
                return False
        self._running[slot] = self._running.get(slot, 0) + 1
        self._busy += 1
        return True

    async def _load(self, tx: Tx) -> None:
        self._loaded = True
        self._running = dict(await running_with_reserved(tx))
        reserved = tx.ctx.reserved  # dequeued in memory, still QUEUED in the store
        queued = (await tx.runs.count_by_status()).get(QUEUED, 0) - len(reserved)
        self._busy = sum(self._running.values()) + max(0, queued)
        self._paused = await tx.queues.paused()
        self._limits = await tx.queues.limits()
        self._rated = set(await tx.rate_limits.all())
