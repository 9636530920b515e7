"""Who keeps a held duration wait's timer, on each store (docs/waits.md, "Who keeps a wait's
timer"). Where a run resumes in place (SQLite) the hold answer gives the shared process the due
time (`until`), and the daemon's own timer waits `process_timer_grace_s` for the process's word.
Where it never does (PostgreSQL, engine/resuming.py) the process's word could not let the run go
on: the answer gives no `until` even to a process that says it keeps timers, and the daemon's
timer ends the wait at its due time, with no grace."""

from __future__ import annotations

from pathlib import Path

from tests.engine_support import T0, open_engine
from tests.test_engine_resume_in_place import SharedProcesses, get
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import TriggerRequest
from trigger_local.engine.due import waitpoint_timer
from trigger_local.store import Store
from trigger_local.store.models import QUEUED, WP_WAITING, TaskDef

GRACE_S = 30.0


async def test_the_process_keeps_a_waits_timer_only_where_a_run_resumes_in_place(
        tmp_path: Path, store: Store) -> None:
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, store=store, concurrency=4, evict_after_s=60,
                               process_timer_grace_s=GRACE_S,
                               tasks=[TaskDef(task_id="hello", queue="task/hello")])
    capability = engine.ctx.capability = SharedProcesses()
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = [r for r in await engine.dequeue(10) if r.id == run.id]
    assert await engine.start_attempt(taken, "worker_1", 100) is not None
    capability.holding.add(run.id)
    decision = await engine.wait(run.id, 1, kind="duration", until=iso(T0 + 1), keeps_timer=True)
    assert decision.action == "hold"
    due = engine.ctx.due.at(waitpoint_timer(decision.waitpoint_id))
    if not store.shared:  # SQLite: the process's word resumes the run in place
        assert decision.until == T0 + 1
        assert due == T0 + 1 + GRACE_S
        return
    assert decision.until is None  # no timer for the process: its word could do nothing
    assert due == T0 + 1  # the daemon's timer is due on time, no grace
    clock.advance(1)
    assert await engine.tick_timers() == 1
    wp = await engine.queries.waitpoints.get(decision.waitpoint_id)
    assert wp is not None and wp.status != WP_WAITING
    assert (await get(engine, run.id)).status == QUEUED  # held, for the dequeue to resume
