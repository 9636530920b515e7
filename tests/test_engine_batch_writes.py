"""A batch trigger writes its runs together (issue #13, engine/new_runs.py): one executemany of
the runs' rows, one of their `run.created` events, one look at their queue — and the batch reads
as it did when each run was written at once: idempotency and debounce keys see the runs made
before them in the batch, a queue's limit set by an item is set, the counters are exact, and
each run's history is its `run.created` event, in the batch's order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import T0, noop_engine, open_engine  # noqa: F401 (the engine fixture)
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.debounce import Debounce
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import DELAYED, EXPIRED, QUEUED, TaskDef

N = 40


def _kind(statement: str) -> str:
    words = statement.split()
    if words[0] == "SELECT":
        return "SELECT " + words[words.index("FROM") + 1]
    if words[0] == "INSERT":
        return "INSERT " + words[2]
    return " ".join(words[:2])


class Calls:
    """The writer connection, counting the store's `execute` and `executemany` calls by kind."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.seen: Counter[tuple[str, str]] = Counter()

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.seen["execute", _kind(sql)] += 1
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> Any:
        self.seen["executemany", _kind(sql)] += 1
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _count_calls(engine: Engine) -> Calls:
    store = engine.store
    assert isinstance(store, SqliteStore)
    sql = store._write_view._sql  # noqa: SLF001 - every area's statements go through it
    calls = Calls(sql.conn)
    sql.conn = calls
    return calls


def _stop_counting(engine: Engine, calls: Calls) -> None:
    store = engine.store
    assert isinstance(store, SqliteStore)
    store._write_view._sql.conn = calls._conn  # noqa: SLF001


@pytest.mark.parametrize("two_phase", [False, True])
async def test_a_batch_writes_its_runs_and_their_events_with_one_statement_each(
        engine: Engine, two_phase: bool) -> None:
    reqs = [TriggerRequest(task_id="noop", payload="null") for _ in range(N)]
    calls = _count_calls(engine)
    try:
        if two_phase:
            batch, _ = await engine.create_batch(N)
            seen = await engine.fill_batch(batch, dict(enumerate(reqs)))
            run_ids = [seen[str(i)] for i in range(N)]
        else:
            _, results, _ = await engine.batch_trigger(reqs)
            run_ids = [r.run.id for r in results]
    finally:
        _stop_counting(engine, calls)
    assert calls.seen["executemany", "INSERT runs"] == 1
    assert calls.seen["execute", "INSERT runs"] == 0
    assert calls.seen["executemany", "INSERT events"] == 1
    assert calls.seen["execute", "INSERT events"] == 0
    assert calls.seen["execute", "SELECT queues"] == 1
    read = engine.queries
    assert await read.runs.count_by_status() == {QUEUED: N}
    [queue] = [q for q in await read.queues.all() if q.name == "task/noop"]
    assert queue.queued == N
    created = [e for e in await read.events.after(0, limit=1000) if e.type == "run.created"]
    assert [e.run_id for e in created] == run_ids
    first = await read.runs.get(run_ids[0])
    assert first is not None and first.status == QUEUED and first.payload == "null"
    assert created[0].data["snapshot_id"] == first.snapshot_id


async def test_keys_in_a_batch_see_the_runs_made_before_them(engine: Engine) -> None:
    """An idempotency key or a debounce key later in the batch finds the run an earlier item
    made, as when each run was written at once; plain items around them are written too."""
    items = [TriggerRequest(task_id="noop"),
             TriggerRequest(task_id="noop", idempotency_key="k1"),
             TriggerRequest(task_id="noop"),
             TriggerRequest(task_id="noop", idempotency_key="k1"),
             TriggerRequest(task_id="noop", debounce=Debounce(key="d1", delay_s=10)),
             TriggerRequest(task_id="noop"),
             TriggerRequest(task_id="noop", debounce=Debounce(key="d1", delay_s=10)),
             TriggerRequest(task_id="noop")]
    _, results, _ = await engine.batch_trigger(items)
    ids = [r.run.id for r in results]
    assert [r.cached for r in results] == [False, False, False, True, False, False, True, False]
    assert ids[3] == ids[1] and ids[6] == ids[4]
    assert len(set(ids)) == 6
    read = engine.queries
    assert await read.runs.count_by_status() == {QUEUED: 5, DELAYED: 1}
    for run_id in set(ids):
        assert await read.runs.get(run_id) is not None
    created = [e.run_id for e in await read.events.after(0, limit=100)
               if e.type == "run.created"]
    assert created == [ids[i] for i in (0, 1, 2, 4, 5, 7)]


async def test_a_queue_limit_set_by_an_item_is_set(engine: Engine) -> None:
    """A queue is looked at once per batch, unless an item sets its limit: then each is."""
    items = [TriggerRequest(task_id="noop", queue="shared"),
             TriggerRequest(task_id="noop", queue="shared", queue_concurrency_limit=2),
             TriggerRequest(task_id="noop", queue="shared"),
             TriggerRequest(task_id="noop", queue="shared", queue_concurrency_limit=5),
             TriggerRequest(task_id="noop", queue="shared")]
    await engine.batch_trigger(items)
    [queue] = [q for q in await engine.queries.queues.all() if q.name == "shared"]
    assert queue.concurrency_limit == 5 and queue.queued == 5


async def test_a_batch_whose_item_fails_writes_nothing(engine: Engine) -> None:
    """The batch is one transaction: a run the store refuses undoes the runs before it."""
    items = [TriggerRequest(task_id="noop") for _ in range(3)]
    store = engine.store
    assert isinstance(store, SqliteStore)
    sql = store._write_view._sql  # noqa: SLF001

    class Refusing(Calls):
        def executemany(self, statement: str, rows: Iterable[Any]) -> Any:
            if statement.startswith("INSERT INTO events"):
                raise OSError("disk gone")
            return super().executemany(statement, rows)

    refusing = Refusing(sql.conn)
    sql.conn = refusing
    try:
        with pytest.raises(OSError):
            await engine.batch_trigger(items)
    finally:
        sql.conn = refusing._conn
    read = engine.queries
    assert await read.runs.count_by_status() == {}
    assert [e for e in await read.events.after(0) if e.type == "run.created"] == []


async def test_a_mixed_batch_reads_back_on_both_stores(store: Store, tmp_path: Path) -> None:
    """Review rv10a: PostgreSQL's `runs.insert_many` and `events.append_many` became a batch
    trigger's path with this change (before, only the store contract called insert_many). A
    batch of every kind of item — delayed, with a TTL, tags, metadata and a priority, unicode,
    keys repeated, a queue limit — reads back as made on both stores: each run as returned,
    the counters per queue, tag pages, one `run.created` per new run in the batch's order, and
    the timers of the runs written together fire (DELAYED → QUEUED, the TTL → EXPIRED)."""
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, store=store,
                               tasks=[TaskDef(task_id="noop", queue="task/noop")])
    items = [TriggerRequest(task_id="noop", delay="10s", payload='"é✓ 漢字"'),
             TriggerRequest(task_id="noop", ttl="5s", tags=["x", "ü"]),
             TriggerRequest(task_id="noop", idempotency_key="k"),
             TriggerRequest(task_id="noop", metadata={"a": [1, "ß"]}, priority=3),
             TriggerRequest(task_id="noop", idempotency_key="k"),
             TriggerRequest(task_id="noop", queue="q2", queue_concurrency_limit=3),
             TriggerRequest(task_id="noop", queue="q2"),
             TriggerRequest(task_id="noop", tags=["x"])]
    _, results, _ = await engine.batch_trigger(items)
    read = engine.queries
    for result in results:
        assert await read.runs.get(result.run.id) == result.run
    ids = [r.run.id for r in results]
    assert ids[4] == ids[2] and len(set(ids)) == 7
    assert await read.runs.count_by_status() == {DELAYED: 1, QUEUED: 6}
    queued = {q.name: (q.queued, q.concurrency_limit) for q in await read.queues.all()}
    assert queued == {"task/noop": (4, None), "q2": (2, 3)}
    assert {r.id for r in await read.runs.page(limit=20, tags=["x"])} == {ids[1], ids[7]}
    created = [e.run_id for e in await read.events.after(0, limit=100)
               if e.type == "run.created"]
    assert created == [ids[i] for i in (0, 1, 2, 3, 5, 6, 7)]
    clock.advance(11)
    assert await engine.tick_timers() == 2
    assert await read.runs.count_by_status() == {EXPIRED: 1, QUEUED: 6}
    delayed, expired = await read.runs.get(ids[0]), await read.runs.get(ids[1])
    assert delayed is not None and delayed.status == QUEUED
    assert expired is not None and expired.status == EXPIRED
