"""Mends of the hand-over (engine/handover.py, executors/handover.py) a review found: each
test reproduces a defect main had."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from engine_support import (
    HELLO,
    T0,
    hello_engine,  # noqa: F401 (the engine fixture)
    open_engine,
)

from tests.test_engine_handover import Slots, done, start, status, trigger
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import RunStatusChanged
from trigger_local.engine.handover import hand_over
from trigger_local.executors.pool import PoolExecutor
from trigger_local.executors.process import ProcessSpawner
from trigger_local.executors.workers import IDLE, WorkerHandle
from trigger_local.store.models import CANCELED, EXECUTING, Run, TaskDef, Version


def shared_pool(engine: Engine, tmp_path: Path) -> tuple[PoolExecutor, WorkerHandle]:
    pool = PoolExecutor(engine, engine.settings, "secret", lambda: None,
                        ProcessSpawner(engine, engine.settings, "secret"))
    v1 = engine.projects.current_of("proj_local")
    assert v1 is not None
    pool.versions[v1.id] = v1
    worker = WorkerHandle(id="w1", version_id=v1.id, pid=None,
                          log_path=tmp_path / "w1.log", state=IDLE, shared=True)
    pool.workers[worker.id] = worker
    engine.group.then = partial(hand_over, pool.places)
    return pool, worker


async def two_processes(engine: Engine, tmp_path: Path
                        ) -> tuple[PoolExecutor, WorkerHandle, WorkerHandle]:
    """`shared_pool`'s process `w1` of `version_1`, and `w2` of `version_2`, a version of
    another project ("other", task `bye`) registered now; no hand-over until a test sets it."""
    await engine.register_version(Version(
        id="version_2", project_dir="/other", created_at=T0 + 1, project="other",
        tasks=[TaskDef(task_id="bye", queue="task/bye", shared=True)]))
    pool, a = shared_pool(engine, tmp_path)
    v2 = engine.projects.current_of("other")
    assert v2 is not None
    pool.versions[v2.id] = v2
    b = WorkerHandle(id="w2", version_id=v2.id, pid=None, log_path=tmp_path / "w2.log",
                     state=IDLE, shared=True)
    pool.workers[b.id] = b
    engine.group.then = None
    return pool, a, b


async def queued_then_freed(engine: Engine, pool: PoolExecutor, clock: FakeClock,
                            finished: Run) -> list[str]:
    """r1 and r2 (`hello`) and r3 (`bye`, of the other project) queued one after another, then
    `finished` completes with the hand-over on; the ids of r1, r2, r3."""
    ids = []
    for task, project in (("hello", None), ("hello", None), ("bye", "other")):
        clock.advance(0.001)
        ids.append((await engine.trigger(TriggerRequest(task_id=task, project=project))).run.id)
    engine.group.then = partial(hand_over, pool.places)
    await engine.finish_attempt(finished.id, 1, done())
    await settle(pool)
    return ids


async def settle(pool: PoolExecutor) -> None:
    for _ in range(50):
        jobs = pool.jobs()
        if not jobs:
            return
        await asyncio.wait(jobs, timeout=5)


async def test_a_cancel_committed_before_the_hand_over_gives_leaves_nothing_on_the_process(
        engine: Engine, tmp_path: Path) -> None:
    pool, worker = shared_pool(engine, tmp_path)
    first = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert isinstance(engine.clock, FakeClock)
    engine.clock.advance(0.001)  # queued after `first`: not by its id's random part (a tie)
    nxt = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(1, reserve=True)
    assert taken.id == first.id
    assert await pool.assign(taken)  # the dispatcher's path: A executes on w1
    assert first.id in worker.runs
    order: list[str] = []
    engine.hub.subscribe(RunStatusChanged, lambda e: order.append(f"{e.run_id} {e.status}"))
    real_send = pool.sharing.send

    def send(w: WorkerHandle, message: dict[str, Any]) -> None:
        order.append(f"send {message.get('type')} {message.get('run_id') or ''}")
        real_send(w, message)
    pool.sharing.send = send  # type: ignore[method-assign]
    cancels: list[asyncio.Task[Any]] = []
    real_place = pool.places.place

    def place(run: Run) -> Any:  # a cancel (API, or a parent's cascading) arrives meanwhile
        cancels.append(asyncio.get_running_loop().create_task(engine.cancel(run.id)))
        return real_place(run)
    pool.places.place = place  # type: ignore[method-assign]
    await engine.finish_attempt(first.id, 1, done())
    await asyncio.wait_for(asyncio.gather(*cancels), 10)
    await settle(pool)
    assert (await engine.queries.runs.get(nxt.id)).status == CANCELED  # type: ignore[union-attr]
    assert nxt.id not in worker.runs and nxt.id not in worker.executing, order
    assert pool.by_run.get(nxt.id) is None, order


async def test_dispatcher_path_same_race(engine: Engine, tmp_path: Path) -> None:
    """Pre-existing? The dispatcher's own start (`PoolExecutor._start_on` then `give`)."""
    pool, worker = shared_pool(engine, tmp_path)
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(1, reserve=True)
    cancels: list[asyncio.Task[Any]] = []

    async def then(tx: Any, join: Any) -> None:
        if not cancels:
            cancels.append(asyncio.get_running_loop().create_task(engine.cancel(run.id)))
    engine.group.then = then
    assert await pool.assign(taken)
    await asyncio.wait_for(asyncio.gather(*cancels), 10)
    await settle(pool)
    assert (await engine.queries.runs.get(run.id)).status == CANCELED  # type: ignore[union-attr]
    assert run.id not in worker.runs and run.id not in worker.executing


async def test_fits_one_at_a_time_then_place_refuses_an_older_run(tmp_path: Path) -> None:
    """`_take` asks `fits` of each run against today's room, not the room left once the runs
    before it are placed: two runs of process A (one slot) both 'fit', the second is then
    refused by `place` and dropped, and a younger run of another project takes process B."""
    from trigger_local.store.models import QUEUED
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, runs_per_process=2, tasks=[HELLO])
    try:
        pool, a, b = await two_processes(engine, tmp_path)
        busy = []
        for _ in range(2):  # A executes two runs: full
            clock.advance(0.001)
            busy.append((await engine.trigger(TriggerRequest(task_id="hello"))).run)
        taken = await engine.dequeue(2, reserve=True)
        for run in taken:
            assert await pool.assign(run)
        assert len(a.executing) == 2
        ids = await queued_then_freed(engine, pool, clock, busy[0])
        statuses = [(await engine.queries.runs.get(i)).status for i in ids]  # type: ignore[union-attr]
        # r1 took A's freed slot; r2 (older than r3) stays queued while r3 started on B
        assert statuses == [EXECUTING, QUEUED, QUEUED], statuses
    finally:
        await engine.store.close()


async def test_a_run_place_refuses_keeps_its_rate_limit_token(tmp_path: Path) -> None:
    """Same mis-fit with a rate-limited queue (2 a minute): the hand-over's gate admitted r1 and
    r2 and saved that, but only r1 started; the dispatcher then refuses r2 for the window."""
    from trigger_local.ratelimit import parse_rate_limit
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, runs_per_process=2, tasks=[
        TaskDef(task_id="filler", queue="task/filler", shared=True),
        TaskDef(task_id="hello", queue="task/hello", shared=True,
                rate_limit=parse_rate_limit({"limit": 2, "period": "1m"}))])
    try:
        pool, a, b = await two_processes(engine, tmp_path)
        busy = []
        for _ in range(2):
            clock.advance(0.001)
            busy.append((await engine.trigger(TriggerRequest(task_id="filler"))).run)
        for run in await engine.dequeue(2, reserve=True):
            assert await pool.assign(run)
        ids = await queued_then_freed(engine, pool, clock, busy[0])
        engine.group.then = None
        # one 'hello' started in this minute: the window has room for r2; r3 stayed behind it
        assert [r.id for r in await engine.dequeue(5)] == [ids[1], ids[2]]
    finally:
        await engine.store.close()


async def test_a_start_that_loses_the_transaction_strands_the_runs_behind_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk during the first handed-over start: SQLite rolls the whole transaction back
    (as the existing failed-commit test simulates). The runs `_take` reserved after it stay in
    ctx.reserved for good: QUEUED, skipped by every dequeue, counted as running."""
    import sqlite3

    from trigger_local.engine import attempts
    from trigger_local.store.models import QUEUED
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, concurrency=50, tasks=[
        TaskDef(task_id="hello", queue="task/hello")])
    try:
        ids = await trigger(engine, 4, clock)
        slots = Slots(3)
        running = await start(engine, slots, 1)
        engine.group.then = partial(hand_over, slots)
        writer = engine.store._writer  # type: ignore[attr-defined]
        real = attempts.start

        async def full(tx: Any, run: Run, *args: Any) -> Any:
            tx.ctx.reserved.pop(run.id, None)  # as attempts.start does first
            writer.execute("ROLLBACK").close()  # what SQLite does on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
        monkeypatch.setattr(attempts, "start", full)
        with pytest.raises(sqlite3.OperationalError):
            await engine.finish_attempt(running[0].id, 1, done())
        monkeypatch.setattr(attempts, "start", real)
        assert [await status(engine, i) for i in ids] == [EXECUTING, QUEUED, QUEUED, QUEUED]
        stranded = sorted(engine.ctx.reserved)
        # the disk has room again: the dispatcher's next round takes only the first run
        took = [r.id for r in await engine.dequeue(10, reserve=True)]
        assert engine.ctx.reserved.keys() - set(took) == set() and stranded == [], (stranded, took)
    finally:
        await engine.store.close()


async def test_a_timer_due_in_the_same_batch_as_a_finish_overfills_the_process(
        tmp_path: Path) -> None:
    """runs_per_process 2: the process executes r1 and holds w (wait.for 1 s). Its completion
    of r1 and its timerDue for w arrive together (one message, one batch): w resumes in place
    (it takes a slot) and the hand-over, which counts only `executing` as it was before the
    batch, gives r1's slot AND a second one to queued runs: three executing in the process."""
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, runs_per_process=2, tasks=[HELLO])
    try:
        pool, worker = shared_pool(engine, tmp_path)
        engine.ctx.capability = pool
        engine.group.then = None
        runs = []
        for _ in range(2):
            clock.advance(0.001)
            runs.append((await engine.trigger(TriggerRequest(task_id="hello"))).run)
        for run in await engine.dequeue(2, reserve=True):
            assert await pool.assign(run)
        w, r1 = runs
        decision = await engine.wait(w.id, 1, kind="duration", until=1.5)
        assert decision.action == "hold" and decision.until is not None, decision
        assert worker.executing == {r1.id}
        for _ in range(2):
            clock.advance(0.001)
            await engine.trigger(TriggerRequest(task_id="hello"))
        clock.set(T0 + 2) if hasattr(clock, "set") else clock.advance(2)
        engine.group.then = partial(hand_over, pool.places)
        resumed, _ = await asyncio.gather(
            engine.timer_due(w.id, 1, decision.waitpoint_id),
            engine.finish_attempt(r1.id, 1, done()))
        assert resumed
        await settle(pool)
        assert len(worker.executing) <= engine.settings.runs_per_process, worker.executing
    finally:
        await engine.store.close()
