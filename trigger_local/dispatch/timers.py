"""Firing timers: delays, ttls, max durations, waitpoint times and timeouts, schedule ticks,
rate-limit windows, when the engine's in-memory schedule of due times (engine/due.py) says
something is due.

The daemon runs this as a loop of its own (`step`), apart from the dispatcher's rounds: a round
that starts runs awaits their starts (new processes, group commits), and timers that came due
meanwhile waited for it — with 1,000 `wait.for_(1 s)` at once that was most of their lateness
(issue #13). Apart, a timer fires as soon as the event loop gets to it; the runs its waitpoint
frees go on in their processes in the same transaction (engine/resuming.py), and the
dispatcher is woken only when the timers did something. Without the loop (tests that step the
dispatcher by hand) the dispatcher's round fires them first, as it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..engine import Engine

MAX_SLEEP_S = 5.0  # a safety net only: an earlier due time wakes the loop
MAX_TIMER_ROUNDS = 50  # timer batches per fire (500 each): dispatching is never starved for long
RESYNC_RETRY_S = 1.0


class Timers:
    def __init__(self, engine: Engine, wake_dispatcher: Callable[[], None]) -> None:
        self.engine = engine
        self._wake_dispatcher = wake_dispatcher
        self._wakeup = asyncio.Event()
        self._firing = asyncio.Lock()  # the loop and a dispatcher round never fire at once
        #: the daemon runs `step` as a loop of its own: the dispatcher leaves timers to it
        self.apart = False
        self._stopped = False

    async def fire(self) -> int:
        """Everything due, batch after batch (`tick_timers` takes at most a batch of each kind
        per call): 1,000 schedules on one tick are triggered together. Nothing is asked of the
        store unless the schedule of due times says something is due."""
        due = self.engine.ctx.due
        async with self._firing:
            now = self.engine.clock.now()
            anything, resync = due.take(now)
            if not anything:
                return 0
            done = 0
            try:
                for _ in range(MAX_TIMER_ROUNDS):
                    did = await self.engine.tick_timers()
                    done += did
                    if not did:
                        break
                else:
                    due.add(now)  # more is due than the rounds took: the next fire goes on
            except BaseException:
                due.add(now)  # the fire failed (a full disk): the next one tries again
                if resync:
                    due.resync(now)
                raise
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

    async def step(self) -> None:
        """The loop's one step: sleep until something is due (or an earlier due time comes),
        fire it, and wake the dispatcher if that let runs start (a delay elapsed, a wait
        completed that could not resume in place)."""
        if not self.apart:
            self.apart = True
            self.engine.ctx.due.on_earlier = self._wakeup.set
        await self._sleep()
        if self._stopped:
            return
        self._wakeup.clear()
        if await self.fire():
            self._wake_dispatcher()

    async def _sleep(self) -> None:
        due = self.engine.ctx.due.next()
        timeout = MAX_SLEEP_S
        if due is not None:
            timeout = max(0.0, min(MAX_SLEEP_S, due - self.engine.clock.now()))
        if timeout <= 0:
            return
        try:
            async with asyncio.timeout(timeout):  # not wait_for: no task in between
                await self._wakeup.wait()
        except TimeoutError:
            if timeout >= MAX_SLEEP_S:
                # a safety net only: nothing was due for a while, so ask the store once whether
                # a due time escaped the schedule (one indexed query per idle period)
                self.engine.ctx.due.resync(self.engine.clock.now())

    def stop(self) -> None:
        """No fire starts after this (a sleeping step returns at once)."""
        self._stopped = True
        self._wakeup.set()
