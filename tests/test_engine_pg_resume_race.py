"""Two daemons on one PostgreSQL database: a wait that completes on daemon A never makes its run
count as running beside daemon B's dequeue (docs/scaling.md, "What holds across daemons").

A resume in place (WAITING → EXECUTING in the timer's transaction, engine/resuming.py) would
run outside the dequeues' turn: B's dequeue (READ COMMITTED, in the turn) would not see it, and
A's serializable checks would not see B's dequeue, so a queue of limit 1 would run two. On a
shared store the timer (the daemon's own, or the process's word) queues the run held instead,
for the dequeue. A's timer transaction is paused before its COMMIT, after its snapshot, while B
triggers and dequeues (or triggers a run that starts at once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from tests.test_engine_pg_start_at_once import Places
from tests.test_engine_resume_in_place import SharedProcesses
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store.models import DEQUEUED, EXECUTING, QUEUED, Run, TaskDef

TASKS = [TaskDef(task_id="one", queue="task/one", queue_concurrency_limit=1, shared=True)]
DEADLINE_S = 60  # generous: the machine may be loaded


@pytest.fixture
async def engines(pg_cluster: Cluster,
                  tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine, FakeClock]]:
    clock = FakeClock(T0)
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, clock,
                           tasks=TASKS) as (first, second):
        first.ctx.capability = SharedProcesses()
        yield first, second, clock


async def napping(engine: Engine) -> tuple[Run, str]:
    """A run of `one` started on daemon A, held in a shared process, waiting 1 s."""
    run = (await engine.trigger(TriggerRequest(task_id="one"))).run
    [taken] = await engine.dequeue(5)
    assert await engine.start_attempt(taken, "worker_1", 100) is not None
    decision = await engine.wait(run.id, 1, kind="duration", until=iso(T0 + 1))
    assert decision.action == "hold"
    capability = engine.ctx.capability
    assert isinstance(capability, SharedProcesses)
    capability.holding.add(run.id)
    return run, decision.waitpoint_id


class PausedBeforeCommit:
    """Engine A's next ordinary transaction stops after its body, before its COMMIT (its
    snapshot taken, its writes not yet seen), until `go_on` is set."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.real = engine, engine.store.tx
        self.body_done, self.go_on = asyncio.Event(), asyncio.Event()

    def __enter__(self) -> PausedBeforeCommit:
        self.engine.store.tx = self._paused  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        self.go_on.set()
        self.engine.store.tx = self.real  # type: ignore[method-assign]

    def _paused(self, exclusive: bool = False,
                starts: bool = False) -> AbstractAsyncContextManager[Any]:
        @asynccontextmanager
        async def paused() -> AsyncIterator[Any]:
            async with self.real(exclusive, starts) as view:
                yield view
                if not exclusive and not self.body_done.is_set():
                    self.body_done.set()
                    await self.go_on.wait()
        return paused()


async def running(engine: Engine, *runs: Run) -> list[tuple[str, str]]:
    now = [await engine.queries.runs.get(run.id) for run in runs]
    return [(r.id, r.status) for r in now if r is not None and r.status in (EXECUTING, DEQUEUED)]


async def while_paused(a: Engine, clock: FakeClock, resume: Callable[[], Any],
                       meanwhile: Callable[[], Any]) -> Any:
    """A's `resume` (its timer transaction) paused before COMMIT while `meanwhile` runs on B;
    what `meanwhile` gave."""
    with PausedBeforeCommit(a) as pause:
        clock.advance(1)
        resuming = asyncio.create_task(resume())
        await asyncio.wait_for(pause.body_done.wait(), DEADLINE_S)
        got = await meanwhile()
        pause.go_on.set()
        await asyncio.wait_for(resuming, DEADLINE_S)
    return got


@pytest.mark.parametrize("by_process", [False, True], ids=["daemon_timer", "process_timer"])
async def test_a_resume_never_runs_beside_another_daemons_dequeue(
        engines: tuple[Engine, Engine, FakeClock], by_process: bool) -> None:
    a, b, clock = engines
    x, waitpoint_id = await napping(a)

    async def resume() -> Any:
        return await (a.timer_due(x.id, 1, waitpoint_id) if by_process else a.tick_timers())

    async def trigger_and_dequeue() -> Run:
        y = (await b.trigger(TriggerRequest(task_id="one"))).run
        await b.dequeue(5)
        return y

    y = await while_paused(a, clock, resume, trigger_and_dequeue)
    assert await running(a, x, y) == [(y.id, DEQUEUED)], "queue limit 1"
    now = await a.queries.runs.get(x.id)
    assert now is not None and (now.status, now.snapshot_kind) == (QUEUED, "queued_held")


async def test_a_resume_never_runs_beside_another_daemons_trigger_that_starts(
        engines: tuple[Engine, Engine, FakeClock]) -> None:
    a, b, clock = engines
    x, _ = await napping(a)
    b.ctx.placer = Places("b")

    async def trigger() -> Run:
        return (await b.trigger(TriggerRequest(task_id="one"))).run

    y = await while_paused(a, clock, a.tick_timers, trigger)
    assert len(await running(a, x, y)) <= 1, "queue limit 1"
