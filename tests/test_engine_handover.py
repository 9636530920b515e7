"""A finished run's slot goes to the next run in the same transaction (engine/handover.py): the
group commit that finishes runs dequeues (the dispatcher's own `dequeue`) and starts the runs
that take their slots, committed together; every limit the dispatcher applies holds; a
failure loses nothing and strands nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import RunStatusChanged
from trigger_local.engine.handover import Placement, hand_over
from trigger_local.engine.unit import Tx
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, Run, TaskDef


class Slots:
    """`Places` for one process with `size` slots; refuses the runs of the tasks in `refuse`."""

    def __init__(self, size: int, refuse: Sequence[str] = ()) -> None:
        self.size, self.refuse = size, set(refuse)
        self.executing: set[str] = set()
        self.followed: list[asyncio.Future[Any]] = []
        self.rooms: list[int] = []

    def room(self, freed: Sequence[RunStatusChanged],
             resumed: Sequence[RunStatusChanged] = ()) -> int:
        gone = sum(e.run_id in self.executing for e in freed)
        self.executing -= {e.run_id for e in freed}
        self.rooms.append(self.size - len(self.executing))
        return self.size - len(self.executing) if gone else 0

    def fits(self, runs: Sequence[Run]) -> int:
        fit = 0
        for run in runs:
            if run.task_id in self.refuse or len(self.executing) + fit >= self.size:
                break
            fit += 1
        return fit

    def place(self, run: Run) -> Placement | None:
        if not self.fits([run]):
            return None
        self.executing.add(run.id)
        return Placement("worker_1", 4242, "process", self.followed.append)


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, concurrency=50, tasks=[
        TaskDef(task_id="hello", queue="task/hello"), TaskDef(task_id="sync", queue="task/hello"),
        TaskDef(task_id="keyed", queue="one-at-a-time", queue_concurrency_limit=1)])
    yield eng
    await eng.store.close()


def done() -> AttemptOutcome:
    return AttemptOutcome(ok=True, output='"ok"', output_type="application/json")


async def trigger(engine: Engine, n: int, clock: FakeClock, task: str = "hello",
                  **options: Any) -> list[str]:
    ids = []
    for _ in range(n):
        clock.advance(0.001)  # one after another in the queue
        ids.append((await engine.trigger(TriggerRequest(task_id=task, **options))).run.id)
    return ids


async def start(engine: Engine, slots: Slots, n: int) -> list[Run]:
    """The dispatcher's part: `n` runs dequeued and started on the process."""
    out = []
    for run in await engine.dequeue(n, reserve=True):
        started = await engine.start_attempt(run, "worker_1", 4242)
        assert started is not None
        slots.executing.add(run.id)
        out.append(started[0])
    return out


async def status(engine: Engine, run_id: str) -> str:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run.status


async def test_a_finish_and_the_next_start_share_one_commit(engine: Engine,
                                                            clock: FakeClock) -> None:
    ids = await trigger(engine, 6, clock)
    slots = Slots(2)
    engine.group.then = partial(hand_over, slots)
    running = await start(engine, slots, 2)
    assert [r.id for r in running] == ids[:2]
    before = engine.group.batches
    await asyncio.gather(*(engine.finish_attempt(r.id, 1, done()) for r in running))
    assert engine.group.batches == before + 1  # the finishes and the starts: one transaction
    assert [await status(engine, i) for i in ids] \
        == [COMPLETED, COMPLETED, EXECUTING, EXECUTING, QUEUED, QUEUED]
    # the executor's futures are answered with the started runs, after that commit
    started = [await f for f in slots.followed]
    assert [run.id for run, _ in started] == ids[2:4]
    assert all(attempt.number == 1 and attempt.worker_id == "worker_1" for _, attempt in started)
    assert engine.ctx.reserved == {}


async def test_the_next_runs_go_in_queue_order_and_priority(engine: Engine,
                                                            clock: FakeClock) -> None:
    slow = await trigger(engine, 3, clock)
    urgent = await trigger(engine, 1, clock, priority=60)  # ahead of every older run
    slots = Slots(1)
    engine.group.then = partial(hand_over, slots)
    [first] = await start(engine, slots, 1)
    assert first.id == urgent[0]
    await engine.finish_attempt(first.id, 1, done())
    [(nxt, _)] = [await f for f in slots.followed]
    assert nxt.id == slow[0]


async def test_queue_and_key_limits_hold(engine: Engine, clock: FakeClock) -> None:
    """A queue with limit 1 per concurrency key, many runs queued for two keys: a finish hands
    its slot to the next run of its own key only, however much room the process has."""
    a = await trigger(engine, 5, clock, task="keyed", concurrency_key="a")
    b = await trigger(engine, 5, clock, task="keyed", concurrency_key="b")
    slots = Slots(10)
    engine.group.then = partial(hand_over, slots)
    running = await start(engine, slots, 10)
    assert sorted(r.id for r in running) == sorted([a[0], b[0]])
    seen_executing: list[dict[str | None, int]] = []

    async def check() -> None:
        counts: dict[str | None, int] = {}
        for run_id in a + b:
            run = await engine.queries.runs.get(run_id)
            assert run is not None
            if run.status == EXECUTING:
                counts[run.concurrency_key] = counts.get(run.concurrency_key, 0) + 1
        seen_executing.append(counts)

    for _ in range(4):  # the "a" runs one after another; "b" keeps its one slot
        [current] = [r for r in a if await status(engine, r) == EXECUTING]
        await engine.finish_attempt(current, 1, done())
        await check()
    assert all(c == {"a": 1, "b": 1} for c in seen_executing), seen_executing
    assert [await status(engine, r) for r in a] == [COMPLETED] * 4 + [EXECUTING]
    assert [await status(engine, r) for r in b] == [EXECUTING] + [QUEUED] * 4


async def test_global_concurrency_and_a_paused_queue_hold(tmp_path: Path,
                                                          clock: FakeClock) -> None:
    engine = await open_engine(tmp_path, clock, concurrency=2,
                               tasks=[TaskDef(task_id="hello", queue="task/hello")])
    try:
        ids = await trigger(engine, 6, clock)
        slots = Slots(10)
        engine.group.then = partial(hand_over, slots)
        running = await start(engine, slots, 10)
        assert len(running) == 2  # the global concurrency
        await engine.finish_attempt(running[0].id, 1, done())
        assert [await status(engine, i) for i in ids].count(EXECUTING) == 2  # one took its slot
        await engine.set_queue_paused("task/hello", True)
        await engine.finish_attempt(running[1].id, 1, done())
        assert [await status(engine, i) for i in ids].count(EXECUTING) == 1  # paused: none
        assert engine.ctx.reserved == {}
    finally:
        await engine.store.close()


async def test_a_run_no_process_here_takes_is_not_overtaken(engine: Engine,
                                                            clock: FakeClock) -> None:
    """The next run in line is one the executor cannot start in the commit (a sync task's):
    nothing is handed over past it — it and the runs behind it stay QUEUED, unreserved, for
    the dispatcher's next round."""
    first = await trigger(engine, 1, clock)
    ahead = await trigger(engine, 1, clock)
    blocked = await trigger(engine, 1, clock, task="sync")
    behind = await trigger(engine, 2, clock)
    slots = Slots(3, refuse=["sync"])
    [running] = await start(engine, slots, 1)
    assert running.id == first[0]
    engine.group.then = partial(hand_over, slots)
    await engine.finish_attempt(running.id, 1, done())
    assert [(await f)[0].id for f in slots.followed] == ahead  # the one before it only
    assert [await status(engine, i) for i in blocked + behind] == [QUEUED] * 3
    assert engine.ctx.reserved == {}
    # what the dispatcher then takes: the blocked run first
    assert [r.id for r in await engine.dequeue(1, reserve=True)] == blocked


async def test_a_failed_commit_starts_nothing_and_strands_nothing(engine: Engine,
                                                                  clock: FakeClock) -> None:
    """SQLite rolls the whole transaction back (a full disk): the finish's caller gets the
    error, the hand-over's starts never happened (their futures say so), and the runs are still
    QUEUED with no reservation left, for the next commit or dispatcher round."""
    ids = await trigger(engine, 3, clock)
    slots = Slots(1)
    [running] = await start(engine, slots, 1)
    writer = engine.store._writer  # type: ignore[attr-defined]

    async def then(tx: Tx, join: Any) -> None:
        await hand_over(slots, tx, join)
        writer.execute("ROLLBACK").close()  # what SQLite does on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    engine.group.then = then
    with pytest.raises(sqlite3.OperationalError):
        await engine.finish_attempt(running.id, 1, done())
    assert len(slots.followed) == 1
    with pytest.raises(sqlite3.OperationalError):
        await slots.followed[0]
    assert [await status(engine, i) for i in ids] == [EXECUTING, QUEUED, QUEUED]
    assert engine.ctx.reserved == {}
    engine.group.then = partial(hand_over, slots)  # the disk has room again: it is sent again
    slots.executing = {running.id}
    await engine.finish_attempt(running.id, 1, done())
    assert [await status(engine, i) for i in ids] == [COMPLETED, EXECUTING, QUEUED]


async def test_with_nothing_queued_the_hand_over_reads_one_index(engine: Engine,
                                                                 clock: FakeClock) -> None:
    """A finish (or a wait) whose commit frees a slot when no run is queued: the hand-over's
    dequeue asks one skip-scan of the ready index and nothing else (no running counts, queue
    limits or rate limits)."""
    await trigger(engine, 2, clock)
    slots = Slots(2)
    running = await start(engine, slots, 2)
    engine.group.then = partial(hand_over, slots)
    texts: list[str] = []
    writer = engine.store._writer  # type: ignore[attr-defined]
    writer.set_trace_callback(texts.append)
    try:
        await asyncio.gather(*(engine.finish_attempt(r.id, 1, done()) for r in running))
    finally:
        writer.set_trace_callback(None)
    assert slots.rooms == [2]  # the hand-over ran
    assert [t for t in texts if "COUNT(*)" in t or "FROM queues" in t
            or "rate_limits" in t] == []
