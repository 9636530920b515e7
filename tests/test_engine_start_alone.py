"""A trigger whose new run is the only QUEUED one (nothing queued before it, on a store of its
own with no rate limit) starts it without reading a queue or opening a savepoint, and inserts
it EXECUTING with its attempt instead of inserting it QUEUED and updating it
(engine/starting.py `_insert_alone`, issue #13): one index seek before the run is made says no
other run could go first; its history is any started run's. The dispatcher's rules still
decide: the global concurrency, a run reserved by a round. Real SQLite store (its statements
traced); the executor's side is the recording fake of test_engine_start_at_once.py, an edge."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_engine_start_at_once import Places, stored, trigger

from tests.engine_support import HELLO, T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import wakes
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest, history
from trigger_local.engine.events import Event, RunCreated
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, WP_COMPLETED


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], concurrency=1)
    yield eng
    await eng.store.close()


@pytest.fixture
def places(engine: Engine) -> Places:
    engine.ctx.placer = places = Places(engine)
    return places


@contextmanager
def traced(engine: Engine) -> Iterator[list[str]]:
    """The statements the store's writing connection runs meanwhile."""
    conn: sqlite3.Connection = engine.store._writer  # type: ignore[attr-defined]
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


async def test_a_lone_new_run_starts_with_no_queue_read_and_no_savepoint(
        engine: Engine, places: Places) -> None:
    with traced(engine) as statements:
        run = await trigger(engine)
    assert (await stored(engine, run.id)).status == EXECUTING
    assert not [s for s in statements if "SAVEPOINT" in s]
    # the dequeue's page of the queue (its full rows) is not read: the run is in memory
    assert not [s for s in statements if "ORDER BY queued_at" in s]
    assert places.log[:2] == [f"place {run.id} on version_1",
                              f"started {run.id} EXECUTING attempt 1"]
    # its row is written once, as it is once started (EXECUTING), and never updated
    assert [s for s in statements if s.startswith("INSERT INTO runs ")]
    assert all("'EXECUTING'" in s for s in statements if s.startswith("INSERT INTO runs "))
    assert not [s for s in statements if s.startswith("UPDATE runs ")]
    [attempt] = await engine.queries.attempts.for_run(run.id)
    assert (attempt.number, attempt.status, attempt.worker_id) == (1, EXECUTING, "worker_1")
    # its history is a dispatched run's: created QUEUED, then executing from QUEUED
    events = await engine.queries.events.after(0, run_id=run.id)
    assert [(e.type, e.data["status"], e.data.get("from")) for e in events] == \
        [("run.created", QUEUED, None), ("run.executing", EXECUTING, QUEUED)]
    shown = await history.snapshots(engine.queries, await stored(engine, run.id))
    assert [s["id"] for s in shown] == [e.data["snapshot_id"] for e in events]
    assert len({s["id"] for s in shown}) == 2
    assert shown[-1]["id"] == (await stored(engine, run.id)).snapshot_id


async def test_the_global_concurrency_keeps_a_lone_new_run_queued(
        engine: Engine, places: Places) -> None:
    first = await trigger(engine)
    assert first.status == EXECUTING
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    second = await trigger(engine)  # concurrency=1: the first one runs
    assert (await stored(engine, second.id)).status == QUEUED
    assert places.log[-1] == f"release {second.id}"
    assert engine.ctx.reserved == {}
    # a round would find no run it may start either: the dispatcher is not woken for it
    [created] = [e for e in seen if isinstance(e, RunCreated)]
    assert created.none_runnable and not [e for e in seen if wakes(e)]


async def test_a_run_reserved_by_a_round_counts_and_goes_first(
        engine: Engine, places: Places) -> None:
    engine.settings.concurrency = 2
    places.full = True
    first = await trigger(engine)
    [reserved] = await engine.dequeue(1, reserve=True)  # a round starting it, not committed yet
    assert reserved.id == first.id and first.id in engine.ctx.reserved
    places.full = False
    second = await trigger(engine)  # QUEUED in the store, the reserved run is seen: not alone
    assert (await stored(engine, second.id)).status == EXECUTING  # room for both
    third = await trigger(engine)
    assert (await stored(engine, third.id)).status == QUEUED
    assert first.id in engine.ctx.reserved  # the round's reservation is untouched


async def test_a_waited_lone_run_completes_its_waitpoint(engine: Engine, places: Places) -> None:
    # its RUN waitpoint is made after the start, in the same transaction: the run's end must
    # see it (a copy of the run kept from the start would not)
    result = await engine.trigger(TriggerRequest(task_id="hello"), wait=True)
    run = await stored(engine, result.run.id)
    assert run.status == EXECUTING and result.waitpoint_id and run.waitpoint_id == \
        result.waitpoint_id
    ended = await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output='"ok"'))
    assert ended.status == COMPLETED
    waitpoint = await engine.queries.waitpoints.get(result.waitpoint_id)
    assert waitpoint is not None and waitpoint.status == WP_COMPLETED
