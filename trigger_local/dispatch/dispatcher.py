"""The dispatcher: starts runnable runs on the executor and fires timers.

Event-driven: the loop wakes on the engine's events that may let a run start (`wakes`: a run
created, a run that ended or waits (its slot is free), a wait that completed, a queue resumed
or given room, a version registered, a dev project back online, a schedule changed) and when
the executor says it has room again; otherwise it sleeps until the engine's next due time
(engine/due.py: an in-memory schedule, so a round with nothing due asks the store nothing).
`tick()` does one round and says how much it did, so tests can step it; `step()` is one round
plus the sleep after it, and the daemon's supervisor (supervise.py) calls it over and over,
backing off when a round raises.

A round that fails half-way (a full disk) may have taken runs off their queue (DEQUEUED)
without starting them: they are remembered and put back first thing in the next round, so a
failure never strands a run.

The slots a group commit frees (completions, waits) are given in that commit when a shared
process can take the next run (engine/handover.py): the dispatcher's rounds start the rest.
"""

from __future__ import annotations

import asyncio
from functools import partial

from ..engine import Engine
from ..engine.events import (
    ChangedElsewhere,
    Event,
    ProjectSessionChanged,
    QueueChanged,
    RunChange,
    RunCreated,
    RunRescheduled,
    RunStatusChanged,
    RunUnblocked,
    ScheduleChanged,
    VersionRegistered,
)
from ..engine.handover import Places, RoomTaken, hand_over
from ..executors.base import Executor
from ..statuses import FINAL_STATUSES
from ..store.models import EXECUTING, QUEUED, WAITING, Run

MAX_SLEEP_S = 5.0  # a safety net only: every change that matters wakes the loop
MAX_TIMER_ROUNDS = 50  # timer batches per round (500 each): dispatching is never starved for long
RESYNC_RETRY_S = 1.0
_WAKING = (RunCreated, RunUnblocked, RunRescheduled, QueueChanged, VersionRegistered,
           ProjectSessionChanged, ScheduleChanged, ChangedElsewhere)


def wakes(event: Event) -> bool:
    """Whether `event` may let a run start now or sooner: a new run, a freed slot (a run ended,
    or went from executing to waiting), a completed wait, a queue resumed or given room, a
    version or project that can take runs, a schedule's next tick."""
    if isinstance(event, RunCreated):  # one started by its trigger (engine/starting.py), or
        # one whose trigger's dequeue found nothing runnable (a paused or full queue): no round
        return event.status != EXECUTING and not event.none_runnable
    if isinstance(event, _WAKING):
        return True
    if isinstance(event, RunStatusChanged):
        return event.status in FINAL_STATUSES or (event.status == WAITING
                                                  and event.previous == EXECUTING)
    return False


def gives_room(event: Event) -> bool:
    """Whether `event`, one that `wakes` the loop, only gives room: a run ended, or went from
    executing to waiting. Room alone makes runnable no run but one a limit held back, which
    a trigger's own dequeue takes before the trigger's run (and is undone: engine/starting.py)."""
    return isinstance(event, RunStatusChanged)


class Dispatcher:
    def __init__(self, engine: Engine, executor: Executor) -> None:
        self.engine = engine
        self.executor = executor
        self._wakeup = asyncio.Event()
        self._unstarted: dict[str, Run] = {}  # dequeued by a round that failed before starting them
        self._idle = False  # the last round found nothing to do
        self._clear = False  # nothing runnable waits for a round (`idle`)
        self._news = 0  # waking events that may have made a run runnable (not room alone)
        self._queued_news = 0  # those, and every run that became QUEUED (waking or not)
        # the last round's dequeue saw no QUEUED run at all, and none came since: room alone
        # makes none runnable, so the next round need not ask the store (`_room_only`)
        self._none_queued = False
        # room came that woke no round (`_on_event`): `idle` asks the executor's room, as the
        # round it did not wake would have
        self._room_unseen = False
        self._starting = False  # the round's dequeued runs are being started (`idle`)
        # between a batch's `RoomTaken` notices: its hand-over took the room it freed (`wake`)
        self._room_taken = False
        self._stopped = False
        engine.hub.subscribe(Event, self._on_event)
        engine.ctx.due.on_earlier = self._wakeup.set  # a new earliest due time: sleep less
        places: Places | None = getattr(executor, "places", None)
        if places is not None and not engine.ctx.shared_store:
            # a group commit that frees slots starts the next runs itself (engine/handover.py)
            engine.group.then = partial(hand_over, places)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RoomTaken):
            self._room_taken = event.opens
            return
        if isinstance(event, RunChange) and event.status == QUEUED:
            self._queued_news += 1
            self._none_queued = False
            if self._room_unseen and not (isinstance(event, RunCreated) and event.none_runnable):
                self._wakeup.set()  # room came that woke no round: this run may take it
        if not wakes(event):
            return
        if gives_room(event):
            self.wake()
            return
        self._news += 1
        self._queued_news += 1
        self._none_queued = False
        self._clear = False
        self._room_unseen = False
        self._wakeup.set()

    def wake(self) -> None:
        """Room: a run ended or went waiting, or the executor has room again (a process became
        idle, booted, retired or exited). No round is woken when it would skip its dequeue
        (`_room_only`): with one HTTP trigger per run every run's end woke a round that asked
        the store nothing, yet cost three loop turns per run (~3 % of the daemon's CPU in a
        cProfile of `bench.py --only single`, issue #13);
        `idle` then looks at the room when asked, and a run QUEUED later wakes the round.
        Nor while a group commit's events are published whose hand-over saw every run that may
        start now (`RoomTaken`, engine/handover.py): the room they give is taken or useless."""
        if self._room_taken or self._room_only(0):
            self._room_unseen = True
            return
        self._wakeup.set()

    def idle(self) -> bool:
        """No run waits for a round, so a trigger may start its own run (engine/starting.py):
        the last dequeue took fewer runs than it had room for, and nothing but room came since
        (a run ended or went waiting; the executor's wakes say a process has room), also while
        a round that room woke is under way. With one HTTP trigger per run, the end of the
        previous run wakes the loop before nearly every trigger: when that counted, most of
        those triggers went the dispatcher's way (a dequeue and a start of their own, and their
        answers waited behind its round; issue #13). Room that woke no round (`_on_event`: the
        round would have skipped its dequeue) counts as that round would have: idle if the
        executor has room. A round's runs being started do not hold a trigger back (they are
        reserved: its dequeue counts them as running and does not take them); runs a failed
        round left unstarted do, until the next round puts them back."""
        if self._room_unseen:
            self._room_unseen = False
            self._clear = self.executor.capacity() > 0
        return self._clear and (self._starting or not self._unstarted)

    async def tick(self) -> int:
        """Fire due timers, then start as many runnable runs as there is room for."""
        self._room_unseen = False  # this round looks at the room itself
        done = await self._fire_timers()
        if self._room_only(done):
            self._clear = self.executor.capacity() > 0  # as a dequeue that found nothing
            return done
        await self._requeue_unstarted()
        capacity = self.executor.capacity()
        # new runs only as many as the executor has room for (each beyond it would start a
        # process past the boot limit); held runs resume in their process and need none
        news, queued_news = self._news, self._queued_news
        self._none_queued = False  # until this dequeue says so (it may raise)
        held = self._held_room()
        # lowered by the dispatcher alone, raised by any dequeue that saw a QUEUED run (another
        # unit's that is undone later included); a round that takes nothing leaves it raised
        self.engine.ctx.queued_seen = max(capacity, 0) + held <= 0
        runs = await self.engine.dequeue(max(capacity, 0), held, reserve=True)
        # room left over: nothing else was runnable (unless news came while it dequeued)
        self._clear = len(runs) < capacity and news == self._news
        self._none_queued = not runs and not self.engine.ctx.queued_seen \
            and queued_news == self._queued_news
        self._unstarted.update((run.id, run) for run in runs)
        self._starting = True
        try:
            if len(runs) == 1:  # alone (an idle daemon's trigger): no task in between, and its
                with self.engine.group.alone():  # start is committed at once (engine/unit.py)
                    return done + await self._start_one(runs[0])  # on failure: in _unstarted
            # concurrently: their attempts then start in one transaction (GroupCommit,
            # engine/unit.py)
            outcomes = await asyncio.gather(*(self._start_one(run) for run in runs),
                                            return_exceptions=True)
        finally:
            self._starting = False
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the runs it left DEQUEUED are in _unstarted
            done += outcome
        return done

    def _room_only(self, timers_done: int) -> bool:
        """Whether a round may skip its dequeue (and room need wake none, `wake`): the last
        dequeue saw no QUEUED run at all,
        and since then only room came (a run ended or went waiting, the executor has room) —
        no new run, no completed wait, no run put back on a queue, no timer fired, no round
        left runs unstarted. Room makes runnable only a run a limit held back, and there was
        none: with one HTTP trigger per run, each run's end woke a round whose dequeue (a
        write transaction) found nothing (issue #13). Not on a store daemons share: another
        daemon's runs come as `ChangedElsewhere`, but its dequeues are not this one's."""
        return self._none_queued and not timers_done and not self._unstarted \
            and not self.engine.ctx.shared_store

    async def _start_one(self, run: Run) -> int:
        started = await self._start(run)
        del self._unstarted[run.id]
        return started

    async def _start(self, run: Run) -> int:
        if run.worker_id:
            if self.executor.holds(run.worker_id) and await self.executor.resume(run):
                return 1
            await self.engine.worker_lost(run.id, run.attempt_count,
                                          "The process holding this run is gone", interrupted=True)
            return 0
        # what the attempt reads (its records, packets another daemon took) is read while the
        # run is still DEQUEUED (executors/assignments.py `before_start`): a database that does
        # not give it fails the round, which puts the run back on its queue
        # (`_requeue_unstarted`), rather than after its attempt started, with no process ever
        # given it
        if await self.executor.assign(run):
            return 1
        await self.engine.requeue(run, "no process available")
        return 0

    async def _requeue_unstarted(self) -> None:
        # requeue only moves a run that is still DEQUEUED: one that did start is left alone
        for run in list(self._unstarted.values()):
            await self.engine.requeue(run, "the dispatch round that took it failed")
            del self._unstarted[run.id]

    async def _fire_timers(self) -> int:
        """Everything due, before any run is started: `tick_timers` takes at most a batch of each
        kind per call, and starting runs (new processes) can take seconds on a busy machine, so
        1,000 schedules on one tick must not wait for the first batch's runs to start. Nothing
        is asked of the store unless the engine's schedule of due times (engine/due.py) says
        something is due."""
        due = self.engine.ctx.due
        now = self.engine.clock.now()
        anything, resync = due.take(now)
        if not anything:
            return 0
        done = 0
        due.firing = True  # a trigger meanwhile does not start its run ahead of them
        try:
            for _ in range(MAX_TIMER_ROUNDS):
                did = await self.engine.tick_timers()
                done += did
                if not did:
                    break
            else:
                due.add(now)  # more is due than the rounds took: the next round goes on
        except BaseException:
            due.add(now)  # the round failed (a full disk): the next one tries again
            if resync:
                due.resync(now)
            raise
        finally:
            due.firing = False
        if resync:
            await self._resync(now, done)
        return done

    async def _resync(self, now: float, done: int) -> None:
        """Take the store's next due time as the next resync entry (engine/due.py)."""
        at = await self.engine.queries.timers.next_due_at()
        if at is not None and at <= now and not done:
            # due, yet the timer round found nothing to do: try again in a while, not in a spin
            at = now + RESYNC_RETRY_S
        self.engine.ctx.due.resync(at)

    def _held_room(self) -> int:
        # held processes resume without needing a new one
        describe = self.executor.describe()
        return int(describe.get("states", {}).get("held", 0)) + int(describe.get("held_runs", 0))

    async def step(self) -> None:
        """One round, after sleeping (until woken or something is due) if the last round found
        nothing to do. The sleep comes first so that a round that succeeded is over, and reported
        as such, at once; a round that raised is tried again without sleeping (the supervisor
        backed off already)."""
        if self._idle:
            await self._sleep()
        else:  # the last round started runs: their assignments (a woken poll) and the answers
            await asyncio.sleep(0)  # waiting to be written go out before this round's dequeue
        if self._stopped:
            return
        self._wakeup.clear()
        self._idle = False
        self._idle = not await self.tick()

    async def _sleep(self) -> None:
        due = self.engine.ctx.due.next()
        timeout = MAX_SLEEP_S
        if due is not None:
            timeout = max(0.0, min(MAX_SLEEP_S, due - self.engine.clock.now()))
        try:
            # asyncio.timeout, not wait_for: woken by an event, the loop goes on in the next turn
            # of the event loop (wait_for's task in between costs two more turns, which the
            # request that triggered the run spends answering first: issue #13's trigger→start)
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        except TimeoutError:
            if timeout >= MAX_SLEEP_S:
                self._none_queued = False  # the safety net's round asks the store
                # a safety net only: nothing woke the loop for a while, so ask the store once
                # whether a due time escaped the schedule (one indexed query per idle period)
                self.engine.ctx.due.resync(self.engine.clock.now())

    def stop(self) -> None:
        """No round starts after this (a sleeping step returns at once)."""
        self._stopped = True
        self._wakeup.set()
