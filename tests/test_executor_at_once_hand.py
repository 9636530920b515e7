"""The pool's side of a run started in its trigger's transaction (executors/at_once.py): the
real `WarmSlots` and `SharedSlot` on a real `PoolExecutor` over a real SQLite engine; the shared
process is a `WorkerHandle` with no process behind it (its messages are read, not sent).

A cancel that commits after the start but before the assignment left (a parent's cancel
cascading to a child started at once) must not be followed by the child's assignment: the run,
CANCELED, then executed, and its slot on the process was never given back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine_support import hello_engine  # noqa: F401 (the engine fixture)

from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import RunStatusChanged
from trigger_local.executors.at_once import SharedSlot, WarmSlots
from trigger_local.executors.pool import PoolExecutor
from trigger_local.executors.process import ProcessSpawner
from trigger_local.executors.workers import IDLE, WorkerHandle
from trigger_local.store.models import CANCELED, EXECUTING, Attempt, Run


class Probe:
    """The daemon's placer (`WarmSlots`), and a hook into each slot's `started` (called in the
    transaction, before its commit)."""

    def __init__(self, warm: WarmSlots) -> None:
        self.warm = warm
        self.on_started: Callable[[Run], None] | None = None
        self.slots: list[SharedSlot] = []

    def place(self, run: Run, version_id: str) -> SharedSlot | None:
        slot = self.warm.place(run, version_id)
        if slot is not None:
            self.slots.append(slot)
            real = slot.started

            def started(run: Run, attempt: Attempt) -> None:
                real(run, attempt)
                if self.on_started is not None:
                    self.on_started(run)
            slot.started = started  # type: ignore[method-assign]
        return slot


def warm_pool(engine: Engine, tmp_path: Path) -> tuple[PoolExecutor, WorkerHandle, Probe]:
    pool = PoolExecutor(engine, engine.settings, "secret", lambda: None,
                        ProcessSpawner(engine, engine.settings, "secret"))
    assert engine.current_version is not None
    pool.versions[engine.current_version.id] = engine.current_version
    worker = WorkerHandle(id="w1", version_id=engine.current_version.id, pid=None,
                          log_path=tmp_path / "w1.log", state=IDLE, shared=True)
    pool.workers[worker.id] = worker
    probe = Probe(WarmSlots(pool, idle=lambda: True))
    engine.ctx.placer = probe
    return pool, worker, probe


def assigned(worker: WorkerHandle) -> list[str]:
    """The runs whose assignment the process was sent."""
    return [m["assignment"]["run_id"] for m in worker.messages if m.get("type") == "assign"]


async def test_a_cancel_committed_before_the_hand_leaves_no_run_on_the_process(
        engine: Engine, tmp_path: Path) -> None:
    pool, worker, probe = warm_pool(engine, tmp_path)
    order: list[str] = []
    engine.hub.subscribe(RunStatusChanged, lambda e: order.append(f"{e.run_id} {e.status}"))
    real_send = pool.sharing.send

    def send(w: WorkerHandle, message: dict[str, Any]) -> None:
        order.append(f"send {message.get('type')}")
        real_send(w, message)
    pool.sharing.send = send  # type: ignore[method-assign]

    parent = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert parent.status == EXECUTING and parent.id in worker.runs
    cancels: list[asyncio.Task[Any]] = []
    # the parent's cancel arrives while its child's trigger is in its transaction
    probe.on_started = lambda run: cancels.append(
        asyncio.get_running_loop().create_task(engine.cancel(parent.id)))
    child = (await engine.trigger(TriggerRequest(task_id="hello", parent_run_id=parent.id,
                                                 resume_parent=True), wait=True)).run
    await asyncio.wait_for(asyncio.gather(*cancels), 30)
    assert (await engine.queries.runs.get(child.id)).status == CANCELED
    # nothing of the canceled child stays on the process (a leaked slot, a run to execute)
    assert child.id not in worker.runs and child.id not in worker.executing, order
    assert pool.by_run.get(child.id) is None, order
    # its assignment, if one left, left before its cancel was published
    if f"{child.id} {CANCELED}" in order:
        canceled = order.index(f"{child.id} {CANCELED}")
        assert "send assign" not in order[canceled:], order


async def test_a_slot_whose_run_left_the_process_hands_nothing(engine: Engine,
                                                               tmp_path: Path) -> None:
    pool, worker, probe = warm_pool(engine, tmp_path)
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    await asyncio.sleep(0)  # the assignment leaves on the turn after the trigger's
    assert run.status == EXECUTING and assigned(worker) == [run.id]
    # the run ends (as the pool books a cancel's RunStatusChanged), then a late hand
    pool.by_run.pop(run.id)
    pool.sharing.moved(worker, run.id, CANCELED, attempt_ended=True)
    sent = len(worker.messages)
    probe.slots[0].hand()
    assert len(worker.messages) == sent, worker.messages[sent:]
    assert run.id not in worker.runs and run.id not in worker.executing


async def test_the_triggers_answer_leaves_before_the_assignment(engine: Engine,
                                                                tmp_path: Path) -> None:
    """The trigger returns (and its route writes the answer) in the turn that published the
    run's start; the assignment follows on the next turn (issue #13: the answer's send does
    not wait behind the process's)."""
    pool, worker, _ = warm_pool(engine, tmp_path)
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert run.status == EXECUTING and run.id in worker.runs
    assert assigned(worker) == []  # not yet: the answer is written first
    await asyncio.sleep(0)
    assert assigned(worker) == [run.id]
    assert pool.by_run[run.id] == worker.id


async def test_a_cancel_between_the_commit_and_the_hand_sends_nothing(
        engine: Engine, tmp_path: Path) -> None:
    """A cancel committed after the start's commit but before the hand (the turn in between)
    takes the run off the process: no assignment follows, no slot stays taken."""
    pool, worker, _ = warm_pool(engine, tmp_path)
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert run.status == EXECUTING and assigned(worker) == []
    await engine.cancel(run.id)  # committed before the loop turned
    for _ in range(3):
        await asyncio.sleep(0)
    assert (await engine.queries.runs.get(run.id)).status == CANCELED
    assert run.id not in assigned(worker), worker.messages
    assert run.id not in worker.runs and run.id not in worker.executing
    assert pool.by_run.get(run.id) is None
