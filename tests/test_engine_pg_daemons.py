"""Two engines (two daemons) on one PostgreSQL database, dequeuing, starting and finishing runs
at the same time, round after round: a run is taken by one of them only and runs once, and a
queue's limit, its concurrency keys' limits and the global concurrency hold across both
(docs/scaling.md). Their transactions really run side by side; the database keeps them
correct."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.models import COMPLETED, Run, TaskDef

CONCURRENCY = 6
LIMITED, KEYED = 2, 1
TASKS = [TaskDef(task_id="free", queue="task/free"),
         TaskDef(task_id="limited", queue="task/limited", queue_concurrency_limit=LIMITED),
         TaskDef(task_id="keyed", queue="task/keyed", queue_concurrency_limit=KEYED)]


@pytest.fixture
async def engines(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0), tasks=TASKS,
                           concurrency=CONCURRENCY) as both:
        yield both


async def trigger_all(engines: tuple[Engine, Engine]) -> list[Run]:
    requests = [TriggerRequest(task_id=task) for task in ("free", "limited") for _ in range(30)]
    requests += [TriggerRequest(task_id="keyed", concurrency_key=f"k{n % 3}") for n in range(30)]
    # through both engines at once: triggers run side by side too
    results = await asyncio.gather(*(engines[n % 2].trigger(req)
                                     for n, req in enumerate(requests)))
    return [r.run for r in results]


def check_limits(running: list[Run]) -> None:
    assert len(running) <= CONCURRENCY
    by_queue = Counter(r.queue for r in running)
    assert by_queue["task/limited"] <= LIMITED
    by_key = Counter(r.concurrency_key for r in running if r.queue == "task/keyed")
    assert all(n <= KEYED for n in by_key.values()), by_key


async def test_two_engines_dequeue_at_once_and_every_guarantee_holds(
        engines: tuple[Engine, Engine]) -> None:
    runs = await trigger_all(engines)
    chance = random.Random(14)
    taken_by: dict[str, int] = {}
    running: dict[str, tuple[int, int]] = {}  # run id -> (engine, attempt)
    rounds = 0
    while len(taken_by) < len(runs) or running:
        rounds += 1
        assert rounds < 500, f"stuck: {len(taken_by)} of {len(runs)} taken"
        got = await asyncio.gather(*(e.dequeue(4) for e in engines))
        for n, dequeued in enumerate(got):
            for run in dequeued:
                assert run.id not in taken_by, f"{run.id} taken twice"
                taken_by[run.id] = n
        started = await asyncio.gather(*(engines[n].start_attempt(run, f"worker_{n}", None)
                                         for n, dequeued in enumerate(got) for run in dequeued))
        for pair in started:
            assert pair is not None
            run, attempt = pair
            running[run.id] = (taken_by[run.id], attempt.number)
        now = [r for r in await engines[0].queries.runs.get_many(list(running))]
        check_limits(now)
        # both engines finish a part of what runs, at once
        done = [run_id for run_id in running if chance.random() < 0.5]
        await asyncio.gather(*(engines[running[run_id][0]].finish_attempt(
            run_id, running[run_id][1], AttemptOutcome(ok=True)) for run_id in done))
        for run_id in done:
            del running[run_id]
    assert set(Counter(taken_by.values())) == {0, 1}  # both took runs
    for run in await engines[1].queries.runs.get_many([r.id for r in runs]):
        assert run.status == COMPLETED
        attempts = await engines[1].queries.attempts.for_run(run.id)
        assert [a.status for a in attempts] == [COMPLETED]


async def race_for_the_last_slot(engines: tuple[Engine, Engine],
                                 requests: list[TriggerRequest]) -> None:
    """Two daemons dequeue and start at once, round after round, where one slot is free: never
    two of `requests`' runs EXECUTING together; each run ends once, and all of them run."""
    first, second = engines
    ids = {r.run.id for r in await asyncio.gather(*(first.trigger(q) for q in requests))}
    done: set[str] = set()
    while done != ids:
        taken = await asyncio.gather(first.dequeue(2), second.dequeue(2))
        runs = [(engine, run) for engine, got in zip(engines, taken, strict=True)
                for run in got]
        assert len(runs) <= 1, [run.id for _, run in runs]  # the last slot goes to one of them
        for engine, run in runs:
            started = await engine.start_attempt(run, "worker_1", None)
            assert started is not None
            executing = await first.queries.runs.page(statuses=["EXECUTING"])
            assert [r.id for r in executing] == [run.id]
            ended = await engine.finish_attempt(run.id, started[1].number,
                                                AttemptOutcome(ok=True))
            assert ended.status == COMPLETED and run.id not in done
            done.add(run.id)


async def test_two_daemons_racing_for_the_last_slot_of_a_queue_with_limit_1(
        engines: tuple[Engine, Engine]) -> None:
    await race_for_the_last_slot(engines, [TriggerRequest(task_id="keyed") for _ in range(6)])


async def test_two_daemons_racing_for_the_last_slot_of_a_concurrency_key(
        engines: tuple[Engine, Engine]) -> None:
    # (the queue's limit of 1 is per key: one key, one slot)
    await race_for_the_last_slot(engines, [TriggerRequest(task_id="keyed", concurrency_key="k")
                                           for _ in range(6)])
