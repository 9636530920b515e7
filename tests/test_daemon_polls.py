"""A task process's long-poll (`Daemon.next_assignment`): it waits in the request's own task,
so a message given to a waiting process is answered on the loop's next turn (issue #13's
trigger→start: raced against the drain in a task of its own it took three turns, behind the
dispatcher's next round); a drain still answers it at once with nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from trigger_local.config import DaemonSettings
from trigger_local.daemon_core import Daemon


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, asyncio.Event]]:
    """A daemon (not started: no store, no loops) whose executor's poll waits for `word`."""
    d = Daemon(DaemonSettings(home=tmp_path / "home", port=0))
    word = asyncio.Event()

    async def next_assignment(worker_id: str, wait_s: float, ack: int | None = None) -> Any:
        await word.wait()  # the edge: the pool's poll, waiting for a message
        return [{"seq": 1, "type": "assign"}]

    d.executor.next_assignment = next_assignment  # type: ignore[method-assign]
    yield d, word


async def test_a_poll_is_answered_on_the_turn_after_its_message(
        daemon: tuple[Daemon, asyncio.Event]) -> None:
    d, word = daemon
    poll = asyncio.create_task(d.next_assignment("worker_1", 20, 0))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not poll.done()
    word.set()
    await asyncio.sleep(0)  # one turn
    assert poll.done() and poll.result() == [{"seq": 1, "type": "assign"}]


async def test_a_drain_answers_a_waiting_poll_with_nothing_and_later_ones_at_once(
        daemon: tuple[Daemon, asyncio.Event]) -> None:
    d, _ = daemon
    poll = asyncio.create_task(d.next_assignment("worker_1", 20, 0))
    await asyncio.sleep(0)
    d.engine.hub.drain()
    assert await asyncio.wait_for(poll, 30) is None
    assert await asyncio.wait_for(d.next_assignment("worker_1", 20, 0), 30) is None


async def test_a_cancelled_request_is_not_taken_for_a_drain(
        daemon: tuple[Daemon, asyncio.Event]) -> None:
    d, _ = daemon
    poll = asyncio.create_task(d.next_assignment("worker_1", 20, 0))
    await asyncio.sleep(0)
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
    both = asyncio.create_task(d.next_assignment("worker_1", 20, 0))
    await asyncio.sleep(0)
    both.cancel()  # the request is cancelled, and the daemon drains in the same turn
    d.engine.hub.drain()
    with pytest.raises(asyncio.CancelledError):
        await both
