"""How many round trips to PostgreSQL each unit of a run's life costs (issue #14: on one machine
a unit's time on PostgreSQL is mostly its round trips, docs/scaling.md). A trigger, a dequeue, a
start, a completion, a wait and a dequeue that finds nothing are counted on a real engine and
database; each budget is what the store does today, so a change that adds round trips to the
hot path shows here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tests.engine_support import pg_t_engine  # noqa: F401 (the engine fixture)
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.models import Attempt, LogEntry, Run

#: round trips per unit: statements sent to the server, each awaited (several statements sent
#: in one message count once). Before the kept writes, the BEGIN sent with the first statement
#: and the dequeue's reads sent together: trigger 7, dequeue 12, start 10, finish 12, wait 8;
#: before each commit began the next transaction, a new run's INSERT went with the commit and a
#: dequeue's lock went with its first reads: trigger 4, dequeue 5, finish 5, wait 5, and a
#: dequeue that finds nothing (the dispatcher runs one after most starts and completions) 3
BUDGET = {"trigger": 2, "dequeue": 3, "start": 2, "finish": 4, "wait": 4, "idle dequeue": 2}
#: a trigger that starts its run in its own transaction (engine/starting.py, on PostgreSQL in
#: the dequeues' turn): one unit instead of a trigger's, a dequeue's and a start's (2 + 3 + 2):
#: the turn, the queue's row with the dequeue's reads, the commit (store/postgres/
#: start_reads.py). Six before it read ahead: the turn, the queue's row, the run's INSERT, the
#: dequeue's reads, the page of queued runs, the commit
START_BUDGET = 3
SENDS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every statement any connection sends, counted under the current unit's name."""
    counts: Counter[str] = Counter()
    for name in SENDS:
        original = getattr(asyncpg.Connection, name)

        def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            counts[counts_unit[0]] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(asyncpg.Connection, name, counted)
    counts_unit[0] = ""
    return counts


counts_unit = [""]


async def counted(counts: Counter[str], unit: str, call: Callable[[], Awaitable[Any]]) -> Any:
    counts_unit[0] = unit
    try:
        return await call()
    finally:
        counts_unit[0] = ""


async def a_run_through(engine: Engine, counts: Counter[str], end: str) -> None:
    """Trigger, dequeue and start a run, then finish it or make it wait, counting each."""
    result = await counted(counts, "trigger", lambda: engine.trigger(TriggerRequest(task_id="t")))
    [run] = await counted(counts, "dequeue", lambda: engine.dequeue(5))
    assert run.id == result.run.id
    started = await counted(counts, "start", lambda: engine.start_attempt(run, "worker_1", None))
    assert started is not None
    number = started[1].number
    if end == "finish":
        done = await counted(counts, "finish", lambda: engine.finish_attempt(
            run.id, number, AttemptOutcome(ok=True)))
        assert done.status == "COMPLETED"
    else:
        await counted(counts, "wait", lambda: engine.wait(run.id, number, kind="duration",
                                                          until="1h"))
        waiting = await engine.queries.runs.get(run.id)
        assert waiting is not None and waiting.status == "WAITING"
    assert await counted(counts, "idle dequeue", lambda: engine.dequeue(5)) == []


async def test_each_unit_of_a_run_costs_few_round_trips(engine: Engine,
                                                        round_trips: Counter[str]) -> None:
    await a_run_through(engine, round_trips, "finish")  # warm: what the engine caches is read
    for end in ("finish", "wait"):
        round_trips.clear()
        await a_run_through(engine, round_trips, end)
        measured = {unit: n for unit, n in round_trips.items() if unit}

        over = {unit: n for unit, n in measured.items() if n > BUDGET[unit]}
        assert not over, f"round trips over the budget {BUDGET}: {measured}"


class Places:
    """The executor's side of a start at once (engine/placing.py): a place for every run. An
    edge: the pool's is tested with real processes (tests/e2e/test_start_at_once.py)."""

    def __init__(self) -> None:
        self.released: list[str] = []

    def may_place(self, version_id: str, task_id: str) -> bool:
        return True

    def place(self, run: Run, version_id: str) -> Slot:
        return Slot(self, run.id)


class Slot:
    worker_id, pid, executor = "worker_1", 123, "probe"

    def __init__(self, places: Places, run_id: str) -> None:
        self.places, self.run_id = places, run_id

    def started(self, run: Run, attempt: Attempt) -> None:
        pass

    def release(self) -> None:
        self.places.released.append(self.run_id)


async def test_a_trigger_that_starts_its_run_costs_fewer_round_trips_than_three_units(
        engine: Engine, round_trips: Counter[str]) -> None:
    """A trigger on an idle daemon starts its run in its own transaction (engine/starting.py):
    its round trips replace the trigger's, the dequeue's and the start's (2 + 3 + 2)."""
    engine.ctx.placer = Places()
    await engine.trigger(TriggerRequest(task_id="t"))  # warm
    round_trips.clear()
    result = await counted(round_trips, "trigger and start",
                           lambda: engine.trigger(TriggerRequest(task_id="t")))
    assert result.run.status == "EXECUTING"
    measured = {unit: n for unit, n in round_trips.items() if unit}
    assert measured["trigger and start"] <= START_BUDGET, measured


async def test_a_trigger_with_a_request_key_that_starts_its_run_costs_one_more(
        engine: Engine, round_trips: Counter[str]) -> None:
    """Both SDKs send a request key with every trigger: the engine reads the request cache
    for the key scoped by project and for it unscoped (a request answered while no project
    had its task) in one read, a round trip more (it comes before the queue's read, so it
    cannot go with the reads ahead); its answer is kept for the commit. Eight before the
    reads ahead, the kept answer and the one read."""
    engine.ctx.placer = Places()
    await engine.trigger(TriggerRequest(task_id="t"), request_key="warm")
    round_trips.clear()
    result = await counted(round_trips, "trigger and start", lambda: engine.trigger(
        TriggerRequest(task_id="t"), request_key="key_1"))
    assert result.run.status == "EXECUTING"
    measured = {unit: n for unit, n in round_trips.items() if unit}
    assert measured["trigger and start"] <= START_BUDGET + 1, measured
    again = await engine.trigger(TriggerRequest(task_id="t"), request_key="key_1")
    assert again.run.id == result.run.id  # the request key answers with the same run


#: a burst of log lines: the last log id, the lines, the commit with the event and the count
#: of the lines against the cap (a write kept for the commit: engine/log_cap.py)
LOGS_BUDGET = 3


async def test_a_burst_of_log_lines_pays_no_round_trip_for_its_count(
        engine: Engine, round_trips: Counter[str]) -> None:
    result = await engine.trigger(TriggerRequest(task_id="t"))
    [run] = await engine.dequeue(5)
    started = await engine.start_attempt(run, "worker_1", None)
    assert started is not None and run.id == result.run.id
    lines = [LogEntry(run_id=run.id, attempt=started[1].number, at=0.0, level="info",
                      message=f"line {i}") for i in range(3)]
    await counted(round_trips, "logs", lambda: engine.append_logs(lines))
    assert round_trips["logs"] <= LOGS_BUDGET, dict(round_trips)
    usage = await engine.queries.logs.usage(run.id, started[1].number)
    assert usage is not None and usage.stored_lines == 3
