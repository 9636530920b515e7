"""Eviction: long waits leave memory (docs/durability.md, "Eviction").

A run held waiting — a suspended coroutine in a shared process, or a sync / isolated task's
process that CRIU did not freeze — costs memory for as long as it waits. The evictor lets go of
the ones that waited longer than `evict_after_s`, and, while more than `max_held_runs` are held,
of the longest waiters: the engine ends the attempt interrupted (not counted) and keeps the run
`WAITING` with no process (engine/eviction.py); a shared process is told to drop the run's
coroutine (an `evict` message, like `abort`) and exits once it hosts no run; a process of its
own is ended. When the wait completes the run is queued and its next attempt, in whatever
process the pool gives it, replays its records: completed waits and steps are not done again.

CRIU stays the first choice for sync and isolated tasks: a checkpointed run is not held and is
never evicted. After a dump failed at run time (executors/checkpoints.py) this daemon takes
replay instead of CRIU: a sync or isolated run is evicted once it has waited
`hold_threshold_s`, the wait after which it would have been checkpointed.

`choose` is the decision, a function of the waiters and the time; `Evictor` is the loop that
applies it to the executor's processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from .. import protocol
from ..config import DaemonSettings
from ..engine import Engine
from ..engine.events import RunStatusChanged
from ..engine.states import K_HELD
from ..store.models import WAITING
from ..supervise import Supervisor
from .base import Checkpoints
from .sharing import SharedRuns
from .workers import HELD, KILLED, WorkerHandle

log = structlog.get_logger("eviction")

MAX_SLEEP_S = 5.0  # nothing due: look again anyway (a run adopted after a restart, a held count)
MIN_ROUND_S = 0.05  # waits that start together are looked at in one round, not one round each
#: a shared process emptied by eviction retires at its next poll; one that has not exited by
#: then (its poll's answer was lost) is killed: it hosts no run any more
LET_GO_S = 10.0


@dataclass(frozen=True, slots=True)
class Waiter:
    """A run held waiting in memory."""

    run_id: str
    attempt: int
    worker_id: str
    since: float  # when it began to wait (or when this daemon first saw it wait)
    shared: bool  # a coroutine in a shared process; else a process of its own


@dataclass(frozen=True, slots=True)
class Policy:
    after_s: float  # evicted once it waited this long; <= 0: never for its wait's length
    max_held: int  # at most this many held; <= 0: no bound
    #: a run with a process of its own, when CRIU failed at run time: evicted after this
    exclusive_after_s: float | None = None

    def limit(self, waiter: Waiter) -> tuple[float, str] | None:
        """How long `waiter` may wait held, and the setting that says so."""
        if not waiter.shared and self.exclusive_after_s is not None:
            return self.exclusive_after_s, "hold_threshold_s, as this daemon's CRIU dumps fail"
        if self.after_s > 0:
            return self.after_s, "evict_after_s"
        return None

    @classmethod
    def of(cls, settings: DaemonSettings, checkpointer: Checkpoints | None) -> Policy:
        failed = checkpointer is not None and checkpointer.capability.failed_at_run_time
        return cls(after_s=settings.evict_after_s, max_held=settings.max_held_runs,
                   exclusive_after_s=max(0.0, settings.hold_threshold_s) if failed else None)


def choose(waiters: Iterable[Waiter], now: float, policy: Policy) -> list[tuple[Waiter, str]]:
    """Who is evicted at `now`, and why: every waiter held longer than its limit; then, while
    more than `max_held` are still held, the longest waiters (the oldest wait first)."""
    chosen: list[tuple[Waiter, str]] = []
    kept: list[Waiter] = []
    for waiter in waiters:
        limit = policy.limit(waiter)
        if limit is not None and now - waiter.since >= limit[0]:
            chosen.append((waiter, f"evicted from memory: it waited {now - waiter.since:.1f} s, "
                                   f"longer than {limit[1]} ({limit[0]:g} s); it resumes by "
                                   "replay when its wait completes"))
        else:
            kept.append(waiter)
    if 0 < policy.max_held < len(kept):
        kept.sort(key=lambda w: (w.since, w.run_id))
        for waiter in kept[:len(kept) - policy.max_held]:
            chosen.append((waiter, f"evicted from memory: more than max_held_runs "
                                   f"({policy.max_held}) runs were waiting in memory, and it had "
                                   "waited longest; it resumes by replay when its wait completes"))
    return chosen


def next_due(waiters: Iterable[Waiter], policy: Policy) -> float | None:
    """When the next of `waiters` reaches its limit (None: none ever will)."""
    due = [w.since + limit[0] for w in waiters if (limit := policy.limit(w)) is not None]
    return min(due) if due else None


class EvictionPool(Protocol):
    """The executor as the evictor sees it."""

    engine: Engine
    settings: DaemonSettings
    supervisor: Supervisor
    workers: dict[str, WorkerHandle]
    sharing: SharedRuns
    by_run: dict[str, str]

    def wake(self) -> None: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def checkpointer(self) -> Checkpoints | None: ...

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...


class Evictor:
    """The eviction loop of one executor (started with it, supervised like the dispatcher)."""

    def __init__(self, pool: EvictionPool) -> None:
        self.pool = pool
        #: the runs held waiting (their last change: WAITING, kind held) → when they began
        self.since: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._next_at: float | None = None  # when the loop looks next (None: not sleeping)
        self._stopped = False
        self.evicted = 0
        pool.engine.hub.subscribe(RunStatusChanged, self._on_run_moved)

    async def start(self) -> None:
        """Begin the loop, after the executor adopted the processes a previous daemon left: the
        runs they hold waiting start their clock now (no event said when they began)."""
        now = self.pool.engine.clock.now()
        for run in await self.pool.engine.runs_on_workers():
            if run.status == WAITING and run.snapshot_kind == K_HELD:
                self.since.setdefault(run.id, now)
        self.pool.supervisor.start("eviction", self.step, on_stop=self.stop)

    def stop(self) -> None:
        self._stopped = True
        self._wakeup.set()

    def describe(self) -> dict[str, Any]:
        """The daemon status's view: the limits, and how many runs were evicted so far."""
        policy = self.policy()
        return {"after_s": policy.after_s, "max_held": policy.max_held,
                "exclusive_after_s": policy.exclusive_after_s, "evicted": self.evicted}

    def policy(self) -> Policy:
        return Policy.of(self.pool.settings, self.pool.checkpointer)

    def _on_run_moved(self, event: RunStatusChanged) -> None:
        if event.status != WAITING or event.kind != K_HELD:
            self.since.pop(event.run_id, None)
            return
        now = self.pool.engine.clock.now()
        self.since.setdefault(event.run_id, now)
        policy = self.policy()
        sooner = min((x for x in (policy.after_s, policy.exclusive_after_s)
                      if x is not None and x > 0), default=None)
        if (0 < policy.max_held < len(self.since)) or (sooner is not None and (
                self._next_at is None or now + sooner < self._next_at)):
            self._wakeup.set()

    def waiters(self) -> list[Waiter]:
        """The runs held waiting in this executor's processes now. A run whose wait completed
        (queued again, waiting for its slot) is no longer one: it goes on soon."""
        found: list[Waiter] = []
        for worker in list(self.pool.workers.values()):
            if worker.exited.is_set() or worker.state == KILLED or (
                    worker.freezing is not None and not worker.freezing.done()):
                continue  # gone, going, or being checkpointed: not held
            if worker.shared:
                held = [(r, a) for r, a in worker.runs.items()
                        if r in self.since and r not in worker.executing]
            elif worker.state == HELD and worker.run_id in self.since and worker.attempt:
                held = [(worker.run_id, worker.attempt)]
            else:
                held = []
            found += [Waiter(r, a, worker.id, self.since[r], worker.shared) for r, a in held]
        return found

    def _forget_others(self) -> None:
        """Drop the clocks of runs no process of ours holds (a daemon sharing the database
        changed them, or their process went away): they never leave memory here."""
        ours: set[str] = set()
        for worker in self.pool.workers.values():
            ours.update(worker.runs)
            if worker.run_id:
                ours.add(worker.run_id)
        for run_id in [r for r in self.since if r not in ours]:
            del self.since[run_id]

    async def step(self) -> None:
        """One round: evict whoever `choose` says, then sleep until the next one is due."""
        if self._stopped:
            return
        self._wakeup.clear()
        now = self.pool.engine.clock.now()
        due = await self.evict_due(now)
        timeout = MAX_SLEEP_S if due is None else min(MAX_SLEEP_S, max(MIN_ROUND_S, due - now))
        self._next_at = now + timeout
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._next_at = None
        await asyncio.sleep(MIN_ROUND_S)

    async def evict_due(self, now: float) -> float | None:
        """Evict the runs due at `now`; when the next one will be (None: none will)."""
        if self.pool.stopping:
            return None  # a stop leaves held processes to the next daemon (it adopts them)
        policy = self.policy()
        for waiter, reason in choose(self.waiters(), now, policy):
            if self.pool.stopping or self._stopped:
                break
            await self.evict(waiter, reason)
        self._forget_others()
        return next_due(self.waiters(), policy)

    async def evict(self, waiter: Waiter, reason: str) -> bool:
        """Let go of `waiter`'s run: recorded first (so its process's exit fails nothing), then
        its coroutine dropped or its process ended. False when it no longer waits there."""
        pool = self.pool
        worker = pool.workers.get(waiter.worker_id)
        if worker is None:
            return False
        run = await pool.engine.records.evict(waiter.run_id, waiter.attempt, worker.id, reason)
        self.since.pop(waiter.run_id, None)  # evicted, or not held after all: no clock to keep
        if run is None:
            return False
        pool.by_run.pop(waiter.run_id, None)
        self.evicted += 1
        log.info("run evicted from memory", run=waiter.run_id, worker=worker.id,
                 shared=worker.shared, reason=reason)
        if worker.shared:
            worker.runs.pop(waiter.run_id, None)
            worker.executing.discard(waiter.run_id)
            pool.sharing.send(worker, protocol.evict(waiter.run_id))
            if not worker.runs:
                self._let_go(worker, kill=False)
        else:
            worker.run_id = worker.attempt = None
            self._let_go(worker, kill=True)
        pool.wake()
        return True

    def _let_go(self, worker: WorkerHandle, *, kill: bool) -> None:
        """`worker` hosts no run: out of the pool at once (it takes no new run; its place among
        max_processes is free), then ended — a shared one retires at its next poll."""
        self.pool.workers.pop(worker.id, None)
        if kill:
            worker.state = KILLED
            worker.kill()
        else:
            self.pool.spawn(_kill_unless_gone(worker))


async def _kill_unless_gone(worker: WorkerHandle) -> None:
    try:
        await asyncio.wait_for(worker.exited.wait(), LET_GO_S)
    except TimeoutError:
        log.info("killing an emptied task process that did not retire", worker=worker.id)
        worker.kill()
