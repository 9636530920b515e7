"""A timer that completes a wait resumes the run held in a shared process in the same
transaction (engine/resuming.py): WAITING → EXECUTING, no `queued_held` step, no dispatcher
round; and only when that cannot take a slot some other run would get.

On PostgreSQL (a store daemons share) there is no resume in place: it would make a run count
as running outside the dequeues' turn, unseen by another daemon's dequeue (docs/scaling.md).
The timer queues the run held, and the dispatcher's dequeue resumes it, still in the process
that holds it (`dispatched`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import T0, get, open_engine
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import Event, RunResumed, RunStatusChanged, RunUnblocked
from trigger_local.store import Store
from trigger_local.store.models import (
    DEQUEUED,
    EXECUTING,
    QUEUED,
    WAITING,
    WP_COMPLETED,
    Run,
    TaskDef,
)

#: a resumed run's last events: in place, or through the dequeue (PostgreSQL)
RESUMED_TAIL = {True: ["run.waiting", "run.resumed"],
                False: ["run.waiting", "run.unblocked", "run.resumed"]}
DATETIME_RESULT = {"ok": True, "status": "COMPLETED", "output": None,
                   "outputType": "application/json"}


class SharedProcesses:
    """The executor's answers the engine asks for: which runs a shared process holds."""

    def __init__(self) -> None:
        self.holding: set[str] = set()

    def can_checkpoint(self) -> bool:
        return False

    def shares_process(self, run_id: str) -> bool:
        return run_id in self.holding


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, concurrency=4, tasks=[
        TaskDef(task_id="hello", queue="task/hello"),
        TaskDef(task_id="one-at-a-time", queue="task/one-at-a-time", queue_concurrency_limit=1)])
    eng.ctx.capability = SharedProcesses()
    yield eng


@pytest.fixture
def published(engine: Engine) -> list[Event]:
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    return seen


@pytest.fixture
def transactions(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per store transaction the engine opens from now on."""
    opened: list[bool] = []
    real: Callable[..., Any] = engine.store.tx

    def counting(exclusive: bool = False, starts: bool = False) -> Any:
        opened.append(exclusive)
        return real(exclusive, starts)
    monkeypatch.setattr(engine.store, "tx", counting)
    return opened


async def waiting(engine: Engine, task_id: str = "hello", *, until: float = T0 + 1,
                  shared: bool = True, **options: Any) -> Run:
    """A run that started on a worker and waits (held) until `until`."""
    run = (await engine.trigger(TriggerRequest(task_id=task_id, **options))).run
    [taken] = [r for r in await engine.dequeue(10) if r.id == run.id]
    started = await engine.start_attempt(taken, "worker_1", 100)
    assert started is not None
    decision = await engine.wait(run.id, 1, kind="duration", until=iso(until))
    assert decision.action == "hold"
    if shared:
        capability = engine.ctx.capability
        assert isinstance(capability, SharedProcesses)
        capability.holding.add(run.id)
    return await get(engine, run.id)


def in_place(engine: Engine) -> bool:
    """Whether a run resumes in place on this store (not on a store daemons share)."""
    return not engine.ctx.shared_store


async def dispatched(engine: Engine, *runs: Run) -> None:
    """The timer queued `runs` held (PostgreSQL); the dequeue takes them and each resumes in the
    process that holds it, as the dispatcher does."""
    for run in runs:
        await queued_held(engine, run)
    taken = await engine.dequeue(0, len(runs))
    assert sorted(r.id for r in taken) == sorted(r.id for r in runs)
    for run in taken:
        assert await engine.resume_held(run) is not None


async def test_waits_due_together_resume_their_runs_in_one_transaction(
        engine: Engine, clock: FakeClock, published: list[Event],
        transactions: list[bool]) -> None:
    runs = [await waiting(engine, max_duration=30) for _ in range(3)]
    del transactions[:], published[:]
    clock.advance(1)
    assert await engine.tick_timers() == 3
    assert len(transactions) == 1  # fired, completed and resumed (or queued held): one commit
    if not in_place(engine):
        await dispatched(engine, *runs)
    for run in runs:
        now = await get(engine, run.id)
        assert (now.status, now.snapshot_kind, now.worker_id) == (EXECUTING, "executing",
                                                                   "worker_1")
        assert now.deadline_at == T0 + 1 + 30  # the wait did not count against max_duration
        history = await engine.queries.events.after(0, run_id=run.id)
        assert [e.type for e in history][-len(RESUMED_TAIL[in_place(engine)]):] \
            == RESUMED_TAIL[in_place(engine)]
        resumed = history[-1]
        assert resumed.data["from"] == (WAITING if in_place(engine) else DEQUEUED)
        assert resumed.data["worker_id"] == "worker_1"
        assert "result" not in resumed.data  # the executor's, not the record's
        unblocked = history[-1 if in_place(engine) else -2]  # which wait ended
        waited = unblocked.data["waitpoint_id"]
        # what the process reads, if it reads at all, is there already
        assert (await engine.wait_result(run.id, waited)) == DATETIME_RESULT
        wp = await engine.queries.waitpoints.get(waited)
        assert wp is not None and wp.status == WP_COMPLETED
    if not in_place(engine):
        return
    moves = [e for e in published if isinstance(e, RunStatusChanged)]
    assert all(isinstance(e, RunResumed) and e.previous == WAITING for e in moves)
    assert sorted(e.run_id for e in moves) == sorted(r.id for r in runs)
    # the executor tells each process with the result at hand: no read back
    assert all(e.extra["result"] == DATETIME_RESULT for e in moves)
    assert not any(isinstance(e, RunUnblocked) for e in published)
    assert await engine.dequeue(10) == []  # nothing left for a dispatcher round


async def test_a_token_that_times_out_resumes_its_run_with_the_timeout(
        engine: Engine, clock: FakeClock, published: list[Event]) -> None:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(10)
    assert await engine.start_attempt(taken, "worker_1", 100) is not None
    token, _ = await engine.create_token(timeout="5s")
    assert (await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)).action == "hold"
    capability = engine.ctx.capability
    assert isinstance(capability, SharedProcesses)
    capability.holding.add(run.id)
    clock.advance(5)
    assert await engine.tick_timers() == 1
    if not in_place(engine):  # the process reads its result once the dequeue resumed it
        await dispatched(engine, run)
        result = await engine.wait_result(run.id, token.id)
        assert result is not None and result["ok"] is False
        assert result["status"] == "TIMED_OUT"
        return
    assert (await get(engine, run.id)).status == EXECUTING
    [resumed] = [e for e in published if isinstance(e, RunResumed)]
    result = resumed.extra["result"]
    assert result["ok"] is False and result["status"] == "TIMED_OUT"
    assert "TRIGGER_WAITPOINT_TIMEOUT" in str(result["error"])


async def queued_held(engine: Engine, run: Run) -> None:
    now = await get(engine, run.id)
    assert (now.status, now.snapshot_kind) == (QUEUED, "queued_held")


async def test_a_run_no_shared_process_holds_is_queued_for_the_dispatcher(
        engine: Engine, clock: FakeClock) -> None:
    """Its own process (sync, isolated), a checkpoint, or another daemon's process: the
    dispatcher resumes it as before."""
    run = await waiting(engine, shared=False)
    clock.advance(1)
    assert await engine.tick_timers() == 1
    await queued_held(engine, run)
    [dequeued] = await engine.dequeue(0, 1)
    assert dequeued.id == run.id and await engine.resume_held(dequeued) is not None


async def test_an_evicted_run_is_queued_for_its_replay(engine: Engine, clock: FakeClock) -> None:
    run = await waiting(engine)
    assert await engine.records.evict(run.id, 1, "worker_1", "waited too long") is not None
    clock.advance(1)
    assert await engine.tick_timers() == 1
    now = await get(engine, run.id)
    assert now.status == QUEUED and now.worker_id is None


async def test_a_run_of_a_paused_queue_waits_for_it(engine: Engine, clock: FakeClock) -> None:
    run = await waiting(engine)
    await engine.set_queue_paused("task/hello", True)
    clock.advance(1)
    await engine.tick_timers()
    await queued_held(engine, run)


async def test_it_never_takes_a_slot_a_queued_run_could_have(engine: Engine,
                                                            clock: FakeClock) -> None:
    """concurrency 4: two held runs, one executing, two QUEUED. Resuming one fills the four
    slots (executing + queued + it); the other would take a queued run's slot: queued."""
    first, second = await waiting(engine), await waiting(engine)
    executing = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(10)
    assert taken.id == executing.id and await engine.start_attempt(taken, "w2", 2) is not None
    queued = [(await engine.trigger(TriggerRequest(task_id="hello"))).run for _ in range(2)]
    clock.advance(1)
    assert await engine.tick_timers() == 2
    now = {r.id: await get(engine, r.id) for r in (first, second, *queued)}
    resumed = [EXECUTING, QUEUED] if in_place(engine) else [QUEUED, QUEUED]
    assert sorted(now[r.id].status for r in (first, second)) == resumed
    assert [now[r.id].status for r in queued] == [QUEUED, QUEUED]
    if not in_place(engine):  # the dequeue fills the three free slots of four, in its order
        assert len(await engine.dequeue(10, 2)) == 3


async def test_a_queue_limit_is_kept(engine: Engine, clock: FakeClock) -> None:
    """one-at-a-time (limit 1): two runs wait; the first due resumes in place and takes the
    queue's slot, so the second, due later, waits for the dispatcher."""
    first = await waiting(engine, "one-at-a-time", until=T0 + 1)
    second = await waiting(engine, "one-at-a-time", until=T0 + 2)
    clock.advance(1)
    await engine.tick_timers()
    if not in_place(engine):
        await dispatched(engine, first)
    assert (await get(engine, first.id)).status == EXECUTING
    clock.advance(1)
    await engine.tick_timers()
    await queued_held(engine, second)


async def test_a_queued_run_of_a_limited_queue_goes_first(engine: Engine,
                                                          clock: FakeClock) -> None:
    """Under its queue's limit, but a run of that queue is QUEUED: which of the two starts is
    the dequeue's to say (priority, queue time), so the held run is queued."""
    held = await waiting(engine, "one-at-a-time")
    (await engine.trigger(TriggerRequest(task_id="one-at-a-time")))
    clock.advance(1)
    await engine.tick_timers()
    await queued_held(engine, held)
