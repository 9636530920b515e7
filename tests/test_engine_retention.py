"""Retention (issue #17): `Engine.prune` deletes runs that finished more than `retention_days`
ago with everything that hangs off them, in batches, and names the offloaded packets no run
names any more; live runs and recent ones stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.engine_support import snapshots_of
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.triggering import REQUEST_CACHE_S
from trigger_local.packet_store import STORE
from trigger_local.retention import IDLE_S, Retention
from trigger_local.store.models import COMPLETED, QUEUED, LogEntry, Run, TaskDef, Version

DAY = 86_400.0


async def _finished(engine: Engine, payload: str | None = None,
                    payload_type: str = "application/json") -> Run:
    req = TriggerRequest(task_id="hello", payload=payload, payload_type=payload_type)
    run = (await engine.trigger(req)).run
    await engine.dequeue(10)
    started = await engine.start_attempt(run, "worker_1", 1)
    assert started is not None
    await engine.append_logs([LogEntry(run_id=run.id, at=engine.clock.now(), level="info",
                                       message="hi", attempt=1)])
    return await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output='{"ok":1}'))


async def test_prune_deletes_long_finished_runs_and_what_hangs_off_them(
        engine: Engine, clock: FakeClock) -> None:
    await engine.register_version(Version(id="version_1", project_dir="/p", created_at=clock.now(),
                                          tasks=[TaskDef(task_id="hello", queue="task/hello")]))
    old = [await _finished(engine) for _ in range(3)]
    offloaded = await _finished(engine, payload="packets/a.json", payload_type=STORE)
    shared = await _finished(engine, payload="packets/b.json", payload_type=STORE)
    clock.advance(29 * DAY)
    recent = await _finished(engine)
    clock.advance(1)  # made later: at one instant the page's order is the ids', random in 1 ms
    replay = (await engine.trigger(TriggerRequest(task_id="hello", payload="packets/b.json",
                                                  payload_type=STORE))).run
    clock.advance(2 * DAY)  # the first ones finished 31 days ago, `recent` 2 days ago

    assert await engine.prune(2) == (2, [])  # a batch at a time
    deleted, packets = await engine.prune(100)
    assert deleted == 3
    assert packets == ["packets/a.json"]  # b.json is still the replay's payload
    assert await engine.prune(100) == (1, [])  # nothing left to delete: `recent` is compacted
    assert await engine.prune(100) == (0, [])

    q = engine.queries
    gone = [*old, offloaded, shared]
    assert await q.runs.get_many([r.id for r in gone]) == []
    for run in gone:
        assert await q.snapshots.for_run(run.id) == []
        assert await q.attempts.for_run(run.id) == []
        assert await q.logs.for_run(run.id) == []
        assert await q.events.after(0, run_id=run.id) == []
    assert [r.id for r in await q.runs.page()] == [replay.id, recent.id]
    assert await q.runs.count_by_status() == {COMPLETED: 1, QUEUED: 1}
    assert await q.attempts.for_run(recent.id) != []  # compacted, not deleted


async def test_retention_zero_keeps_everything(engine: Engine, clock: FakeClock) -> None:
    engine.ctx.settings.retention_days = 0
    await engine.register_version(Version(id="version_1", project_dir="/p", created_at=clock.now(),
                                          tasks=[TaskDef(task_id="hello", queue="task/hello")]))
    run = await _finished(engine)
    clock.advance(3650 * DAY)
    assert await engine.prune(100) == (1, [])  # compacted, not deleted
    assert await engine.prune(100) == (0, [])
    assert await engine.queries.runs.get(run.id) is not None


async def test_an_hour_after_it_finished_a_runs_history_is_compacted(
        engine: Engine, clock: FakeClock) -> None:
    await engine.register_version(Version(id="version_1", project_dir="/p", created_at=clock.now(),
                                          tasks=[TaskDef(task_id="hello", queue="task/hello")]))
    first = await _finished(engine)
    second = await _finished(engine)
    q = engine.queries
    assert len(await snapshots_of(engine, first.id)) == 3  # queued, executing, done
    assert await engine.prune(100) == (0, [])  # too recent
    clock.advance(engine.ctx.settings.compact_after_s + 1)
    live = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert await engine.prune(1) == (1, [])
    assert await engine.prune(100) == (1, [])  # the watermark goes on from the first
    assert await engine.prune(100) == (0, [])
    for run in (first, second):
        # the final snapshot said nothing the run row does not (no description): gone too
        assert await q.snapshots.for_run(run.id) == []
        assert [e.type for e in await q.events.after(0, run_id=run.id)] == []
        assert [a.number for a in await q.attempts.for_run(run.id)] == [1]
        assert [e.message for e in await q.logs.for_run(run.id)] == ["hi"]
        again = await q.runs.get(run.id)
        assert again is not None and again.status == COMPLETED and again.output == '{"ok":1}'
    assert [e.type for e in await q.events.after(0, run_id=live.id)] == ["run.created"]


async def test_the_loop_keeps_returning_free_pages_while_some_are_left(
        engine: Engine, tmp_path: Path) -> None:
    """Nothing to prune, but an upgrade left 100k+ free pages: the loop does not wait its idle
    minute between two bounded reclaims (it would take a day to hand them all back)."""
    left = [250, 150, 50, 0]
    calls: list[int] = []

    async def reclaim() -> int:
        calls.append(1)
        return left[len(calls) - 1]

    retention = Retention(engine, tmp_path, reclaim, retention_days=30)
    for _ in range(3):  # each returns after a short pause, not IDLE_S (60 s)
        await asyncio.wait_for(retention.step(), IDLE_S / 3)
    assert len(calls) == 3
    idle = asyncio.ensure_future(retention.step())  # none left: the idle wait, until stopped
    await asyncio.sleep(0.3)
    assert not idle.done()
    retention.stop()
    await asyncio.wait_for(idle, 10)


async def test_request_keys_answers_are_forgotten_after_their_window(
        engine: Engine, clock: FakeClock) -> None:
    # both SDKs send a request key with every trigger: one answer was kept per trigger, for
    # ever (nothing called requests.prune); retention forgets those past their window, in batches
    await engine.register_version(Version(id="version_1", project_dir="/p", created_at=clock.now(),
                                          tasks=[TaskDef(task_id="hello", queue="task/hello")]))
    old = [await engine.trigger(TriggerRequest(task_id="hello"), request_key=f"req_{i}")
           for i in range(3)]
    clock.advance(REQUEST_CACHE_S + 1)
    recent = await engine.trigger(TriggerRequest(task_id="hello"), request_key="req_new")
    assert await engine.prune(2) == (2, [])  # no run to delete or compact: the answers
    assert await engine.prune(100) == (1, [])
    assert await engine.prune(100) == (0, [])
    again = await engine.trigger(TriggerRequest(task_id="hello"), request_key="req_new")
    assert again.run.id == recent.run.id  # within its window: the same answer
    forgotten = await engine.trigger(TriggerRequest(task_id="hello"), request_key="req_0")
    assert forgotten.run.id != old[0].run.id  # past it: a new run, as before the prune
