"""The writer keeps what every dequeue reads of the queues and rate_limits tables between
transactions (store/sqlite/memo.py, issue #13): a single-triggered run's trigger and the
dispatcher's rounds no longer read the paused queues, the limits, the rate limits or the queue's
row each time. A change is seen by the next dequeue; a change that is rolled back — with its
transaction or with a savepoint, a group commit's part — never is, not even by what read it
meanwhile. Real SQLite file; statements traced on the writer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_engine_hot_path import Trace

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store.models import QUEUED, TaskDef

QUEUE = "task/noop"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0), concurrency=1000,
                            tasks=[TaskDef(task_id="noop", queue=QUEUE)])
    yield eng
    await eng.store.close()


def catalog_reads(trace: Trace) -> dict[str, float]:
    seen = trace.per_run()
    return {k: v for k, v in seen.items() if k in ("SELECT queues", "SELECT rate_limits")}


async def test_triggers_and_dequeues_read_the_catalog_once(engine: Engine) -> None:
    await engine.trigger(TriggerRequest(task_id="noop"))
    assert len(await engine.dequeue(5)) == 1
    trace = Trace(engine)  # per_run divides by 20: these are 20 triggers and 20 dequeues
    for _ in range(20):
        await engine.trigger(TriggerRequest(task_id="noop"))  # its queue's row: ensure
        assert len(await engine.dequeue(5)) == 1  # paused, limits, rate limits
    assert catalog_reads(trace) == {}
    # main read all four each time: 1 per trigger (ensure), 3 per dequeue


async def test_a_pause_and_a_limit_are_seen_by_the_next_dequeue(engine: Engine) -> None:
    assert await engine.dequeue(5) == []  # the memo is filled
    await engine.set_queue_paused(QUEUE, True)
    run = (await engine.trigger(TriggerRequest(task_id="noop"))).run
    assert await engine.dequeue(5) == []
    await engine.set_queue_paused(QUEUE, False)
    await engine.set_queue_limit(QUEUE, 1)
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1)  # queued later: at one instant the order is the ids', which is random
    await engine.trigger(TriggerRequest(task_id="noop"))
    assert [r.id for r in await engine.dequeue(5)] == [run.id]  # the limit: one


async def test_a_rate_limit_is_seen_by_the_next_dequeue(engine: Engine) -> None:
    assert await engine.dequeue(5) == []
    async with engine._unit() as tx:
        await tx.rate_limits.set("proj_local", QUEUE, {"limit": 1, "period_s": 60.0})
    for _ in range(3):
        await engine.trigger(TriggerRequest(task_id="noop"))
    assert len(await engine.dequeue(5)) == 1


async def test_a_pause_rolled_back_is_never_seen(engine: Engine) -> None:
    run = (await engine.trigger(TriggerRequest(task_id="noop"))).run
    assert await engine.dequeue(0) == []
    with pytest.raises(Boom):
        async with engine._unit() as tx:
            await tx.queues.update("proj_local", QUEUE, paused=True)
            assert await tx.queues.paused() == {("proj_local", QUEUE)}  # read in its transaction
            raise Boom
    assert [r.id for r in await engine.dequeue(5)] == [run.id]


async def test_a_pause_undone_by_a_savepoint_is_not_seen_in_the_same_transaction(
        engine: Engine) -> None:
    # a group commit's part that failed (engine/unit.py): the parts after it, a hand-over's
    # dequeue among them, read the queues as the savepoint left them
    run = (await engine.trigger(TriggerRequest(task_id="noop"))).run
    async with engine._unit() as tx:
        with pytest.raises(Boom):
            async with tx.savepoint():
                await tx.queues.update("proj_local", QUEUE, paused=True)
                assert await tx.queues.paused() == {("proj_local", QUEUE)}
                assert (await tx.queues.get("proj_local", QUEUE)).paused  # type: ignore[union-attr]
                raise Boom
        assert await tx.queues.paused() == set()
        queue = await tx.queues.get("proj_local", QUEUE)
        assert queue is not None and not queue.paused
    assert [r.id for r in await engine.dequeue(5)] == [run.id]
    assert (await engine.queries.runs.get(run.id)).status != QUEUED  # type: ignore[union-attr]


async def test_the_reader_sees_each_commit_to_the_catalog(engine: Engine) -> None:
    """The reader keeps nothing (memo.py `NoMemo`): the writer's commits change the file
    under it, and nothing of them tells the reader's areas."""
    reader = engine.store.read()
    assert await reader.queues.paused() == set()
    assert await reader.queues.limits() == {}
    assert await reader.rate_limits.all() == {}
    await engine.set_queue_paused(QUEUE, True)
    await engine.set_queue_limit(QUEUE, 2)
    async with engine._unit() as tx:
        await tx.rate_limits.set("proj_local", QUEUE, {"limit": 1, "period_s": 60.0})
    assert await reader.queues.paused() == {("proj_local", QUEUE)}
    assert await reader.queues.limits() == {("proj_local", QUEUE): 2}
    assert list(await reader.rate_limits.all()) == [("proj_local", QUEUE)]
    queue = await reader.queues.get("proj_local", QUEUE)
    assert queue is not None and queue.paused


class Boom(Exception):
    pass
