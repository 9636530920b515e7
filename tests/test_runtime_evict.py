"""A shared task process told to `evict` a waiting run (executors/eviction.py) drops its
coroutine at once and reports nothing; the run's next attempt may be given to the same process
in the same answer, and keeps its place."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from trigger_local import protocol
from trigger_local.protocol import Message
from trigger_local.runtime import worker as worker_module
from trigger_local.runtime.worker import Worker
from trigger_local.sdk.worker_client import WorkerClient


async def test_evict_drops_the_coroutine_and_a_new_attempt_keeps_its_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    async def waits_forever(assignment: dict[str, Any], client: Any, **_: Any) -> None:
        started.append(assignment["attempt"])
        await asyncio.Event().wait()  # a run waiting for word from the daemon

    monkeypatch.setattr(worker_module, "execute", waits_forever)
    worker = Worker(WorkerClient("http://127.0.0.1:9", orphan_timeout=0.1), "w", "t")
    try:
        worker._on_message(Message.parse(protocol.assign({"run_id": "run_1", "attempt": 1})))
        await asyncio.sleep(0)
        first = worker.shared["run_1"]
        # in one answer: the eviction, then the run again (its wait completed meanwhile)
        worker._on_message(Message.parse(protocol.evict("run_1")))
        worker._on_message(Message.parse(protocol.assign({"run_id": "run_1", "attempt": 2})))
        for _ in range(3):
            await asyncio.sleep(0)
        assert first.done()
        second = worker.shared["run_1"]
        assert second is not first and not second.done() and "run_1" in worker._resumed
        assert started == [1, 2]
        worker._on_message(Message.parse(protocol.evict("run_1")))
        for _ in range(3):
            await asyncio.sleep(0)
        assert second.done() and worker.shared == {} and worker._resumed == {}
    finally:
        for task in worker.shared.values():
            task.cancel()
        await worker.client.aclose()


async def test_a_run_given_in_a_poll_answer_starts_before_the_next_poll(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """issue #13's trigger→start: the task function is called before the process writes its
    next poll, not after it."""
    order: list[str] = []

    async def runs_at_once(assignment: dict[str, Any], client: Any, **_: Any) -> None:
        order.append(f"run {assignment['run_id']}")

    monkeypatch.setattr(worker_module, "execute", runs_at_once)
    worker = Worker(WorkerClient("http://127.0.0.1:9", orphan_timeout=0.1), "w", "t")
    worker.use_channel = False
    try:
        message = protocol.numbered(protocol.assign({"run_id": "run_1", "attempt": 1}), 1)
        worker._next = protocol.messages_answer([message])  # as the daemon's answer to a poll
        await worker.tick()
        order.append("next poll")
        assert order == ["run run_1", "next poll"]
    finally:
        for task in worker.shared.values():
            task.cancel()
        await worker.client.aclose()
