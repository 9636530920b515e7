"""The dispatcher: starts runnable runs on the executor and fires timers.

Event-driven: the engine publishes `dispatch` when something may have become runnable (a
trigger, a completion, a resumed wait, a paused queue resumed) and the loop wakes; otherwise it
sleeps until the store's next due time. `tick()` does one round and says how much it did, so
tests can step it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from ..engine import Engine
from ..executors.base import Executor

log = structlog.get_logger("dispatcher")

MAX_SLEEP_S = 5.0  # a safety net only: every change that matters wakes the loop
MAX_TIMER_ROUNDS = 50  # timer batches per round (500 each): dispatching is never starved for long


class Dispatcher:
    def __init__(self, engine: Engine, executor: Executor) -> None:
        self.engine = engine
        self.executor = executor
        self._wakeup = asyncio.Event()
        self._stopped = False
        engine.hub.subscribe(self._on_event)

    def _on_event(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "dispatch":
            self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    async def tick(self) -> int:
        """Fire due timers, then start as many runnable runs as there is room for."""
        done = await self._fire_timers()
        capacity = self.executor.capacity()
        runs = await self.engine.dequeue(max(capacity, 0) + self._held_room())
        for run in runs:
            if run.worker_id:
                if self.executor.holds(run.worker_id) and await self.executor.resume(run):
                    done += 1
                    continue
                await self.engine.worker_lost(run.id, run.attempt_count,
                                              "The process holding this run is gone", interrupted=True)
                continue
            if await self.executor.assign(run):
                done += 1
            else:
                await self.engine.requeue(run, "no process available")
        return done

    async def _fire_timers(self) -> int:
        """Everything due, before any run is started: `tick_timers` takes at most a batch of each
        kind per call, and starting runs (new processes) can take seconds on a busy machine, so
        1,000 schedules on one tick must not wait for the first batch's runs to start."""
        done = 0
        for _ in range(MAX_TIMER_ROUNDS):
            due = await self.engine.store.read().next_due_at()
            if due is None or due > self.engine.clock.now():
                break
            did = await self.engine.tick_timers()
            done += did
            if not did:
                break
        return done

    def _held_room(self) -> int:
        # held processes resume without needing a new one
        describe = self.executor.describe()
        return int(describe.get("states", {}).get("held", 0))

    async def run(self) -> None:
        """Loop `tick()` until `stop()`: after work, go again at once; else sleep until woken or due."""
        while not self._stopped:
            self._wakeup.clear()
            try:
                did = await self.tick()
            except Exception:
                log.exception("dispatch round failed")
                did = 0
            if did:
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        due = await self.engine.store.read().next_due_at()
        timeout = MAX_SLEEP_S
        if due is not None:
            timeout = max(0.0, min(MAX_SLEEP_S, due - self.engine.clock.now()))
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopped = True
        self._wakeup.set()
