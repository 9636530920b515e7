"""The pool's side of starting a run in its trigger's transaction (engine/starting.py): a free
slot of a warm shared process, taken in memory while the transaction runs and handed the
run's assignment once it committed.

Only on an idle daemon (`idle`: the dispatcher's last dequeue took fewer runs than it had room
for, and nothing but room came since) with fewer runs executing than the global concurrency:
under a backlog the dequeue in the trigger's transaction would take an older run and be undone,
a cost for every trigger (measured: one-HTTP-trigger-per-run throughput fell), and the
dispatcher's rounds start runs many at a time anyway. Only shared processes (async tasks,
`runs_per_process` > 1) take runs this way: their room is known without waiting
(`SharedRuns.room`) and a run on one costs no process start. A run of a sync or isolated task,
a version whose description is not cached yet, a stopping pool, a run whose payload is a packet
on a store daemons share (another daemon's packet is fetched first, packet_sharing.py): the
dispatcher starts those, as before. On a store daemons share (PostgreSQL) the trigger asks
`may_place` first: it takes the dequeues' turn only then (engine/starting.py).

The assignment leaves on the loop turn after the run's move to EXECUTING is published
(`WarmSlots._on_moved`), so the trigger's answer, built and written in the publishing turn, goes
first: its `send` does not wait behind the process's (a sequential client sends its next
trigger sooner, issue #13). A cancel committed in between (a parent's, cascading to its child)
takes the run off the process as it is published, and the hand then sends nothing
(`SharedSlot.hand`: a slot whose run ended or moved sends nothing); a cancel committed after the
hand reaches the process as any running run's cancel. The slot is
the pool's record of the run from the moment it is taken: `executing` (counted against the
process's room, so a dispatcher round meanwhile does not give it away), `runs` and `by_run` (so
a process that exits before the hand-off reports the run lost, executors/exits.py, instead of
leaving it EXECUTING with nobody). A transaction that does not commit gives the slot back as
if never taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import packet_store
from ..engine.events import RunStatusChanged
from ..store.models import EXECUTING, Attempt, Run, Version
from .assignments import assignment
from .workers import BUSY, KILLED, WorkerHandle

if TYPE_CHECKING:
    from .pool import PoolExecutor


class SharedSlot:
    """One run's place on a shared process (engine/placing.py `Placement`)."""

    def __init__(self, pool: PoolExecutor, worker: WorkerHandle, version: Version,
                 run_id: str, pending: dict[str, SharedSlot]) -> None:
        self.pool, self.worker, self.version, self.run_id = pool, worker, version, run_id
        self.given: tuple[Run, Attempt] | None = None
        self._pending = pending
        pending[run_id] = self
        worker.executing.add(run_id)
        worker.runs[run_id] = 1  # a new run's first attempt
        pool.by_run[run_id] = worker.id

    @property
    def worker_id(self) -> str:
        return self.worker.id

    @property
    def pid(self) -> int | None:
        return self.worker.pid

    @property
    def executor(self) -> str:
        return self.pool.name

    def started(self, run: Run, attempt: Attempt) -> None:
        self.given = (run, attempt)  # sent once committed: WarmSlots._on_moved

    def hand(self) -> None:
        """The start committed: send the assignment."""
        worker = self.worker
        if self.given is None or worker.exited.is_set() or worker.state == KILLED:
            return  # its exit reports the run lost (it is in `runs`): retried or requeued
        if self.run_id not in worker.runs or self.pool.by_run.get(self.run_id) != worker.id:
            return  # it ended (canceled) or moved since: nothing to execute here
        run, attempt = self.given
        # a new run has no durable records to replay
        given = assignment(run, attempt, self.version, self.pool.secret_key,
                           self.pool.settings.home, [])
        self.pool.sharing.assign(worker, run.id, attempt.number, given)
        self.pool.succession.after_assign(worker, self.version, run)

    def release(self) -> None:
        self._pending.pop(self.run_id, None)
        self.worker.executing.discard(self.run_id)
        self.worker.runs.pop(self.run_id, None)
        if self.pool.by_run.get(self.run_id) == self.worker.id:
            del self.pool.by_run[self.run_id]


class WarmSlots:
    """The pool's `Placer`: a warm shared process of the run's version with room now."""

    def __init__(self, pool: PoolExecutor, idle: Callable[[], bool]) -> None:
        self.pool, self.idle = pool, idle
        self.pending: dict[str, SharedSlot] = {}  # taken by a transaction not committed yet
        pool.engine.hub.subscribe(RunStatusChanged, self._on_moved)

    def _on_moved(self, event: RunStatusChanged) -> None:
        if event.status == EXECUTING and (slot := self.pending.pop(event.run_id, None)):
            # on the loop's next turn: the trigger's answer, written in this one, leaves first;
            # a cancel published in between took the run off the process (nothing is sent)
            asyncio.get_running_loop().call_soon(slot.hand)

    def place(self, run: Run, version_id: str) -> SharedSlot | None:
        pool = self.pool
        version = self._version(version_id, run.task_id)
        if version is None or pool.spawner.refuses(run, version) or _reads_packet(pool, run):
            return None
        fits = [w for w in pool.workers.values() if pool.spawner.fits(w, run)]
        worker = pool.sharing.pick(fits, version_id)
        return None if worker is None else SharedSlot(pool, worker, version, run.id, self.pending)

    def may_place(self, version_id: str, task_id: str) -> bool:
        """`place` would likely find a place (engine/placing.py; the run's machine unchecked)."""
        return self._version(version_id, task_id) is not None \
            and self.pool.sharing.pick(self.pool.workers.values(), version_id) is not None

    def _version(self, version_id: str, task_id: str) -> Version | None:
        """The version whose shared processes may take a run of `task_id` now, or None."""
        pool = self.pool
        if not self.idle() or pool.stopping or pool.settings.runs_per_process <= 1 \
                or pool.spawner.problem() or _executing(pool) >= pool.settings.concurrency:
            return None
        version = pool.versions.get(version_id)  # cached only: a first run goes the long way
        task = version.task(task_id) if version is not None else None
        return version if task is not None and task.shared else None


def _reads_packet(pool: PoolExecutor, run: Run) -> bool:
    """Whether `run`'s payload is a packet that may be another daemon's: the hand-off cannot
    wait for it (`hand` runs in one loop turn), the dispatcher's start does (assignments.py
    `before_start`, packet_sharing.py)."""
    return pool.engine.packets is not None and run.payload_type == packet_store.STORE


def _executing(pool: PoolExecutor) -> int:
    """Runs executing in the pool's processes (as the store's running counts would say: the
    dequeue then finds no room under the global concurrency)."""
    return sum(len(w.executing) if w.shared else w.state == BUSY for w in pool.workers.values())
