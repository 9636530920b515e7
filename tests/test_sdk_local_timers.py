"""The runtime's side of a timer a shared process keeps itself (sdk/local_timers.py): the run goes
on when its timer fires, without waiting for the daemon; what it sends after waits for the
daemon's answer to its `timerDue` word; `gone` drops the attempt; a daemon that does not take
the word leaves the run's sends waiting for the daemon's own resume. The channel is a fake (the
edge); the e2e side is tests/e2e/test_process_timers.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from trigger_local.errors import AttemptGone
from trigger_local.sdk import waits as sdk_waits
from trigger_local.sdk.context import Context, Resumed, RunState

DUE = {"ok": True, "status": "COMPLETED", "output": None, "outputType": "application/json"}


class FakeChannel:
    """Answers `timerDue` with `answer` once `release` is set; records every frame."""

    def __init__(self, answer: bool | BaseException = True) -> None:
        self.answer = answer
        self.release = asyncio.Event()
        self.sent: list[tuple[str, Any]] = []

    async def timer_due(self, run_id: str, attempt: int, token: str, waitpoint_id: str) -> bool:
        self.sent.append(("timerDue", waitpoint_id))
        await self.release.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    async def call(self, name: str, run_id: str, attempt: int, token: str,
                   body: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(("call", name))
        return {}

    async def read_wait(self, run_id: str, token: str, waitpoint_id: str) -> dict[str, Any]:
        raise AssertionError(f"read its wait {waitpoint_id}")


class FakeClient:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel


def _state(channel: FakeChannel) -> tuple[RunState, Resumed]:
    resumed = Resumed()
    state = RunState(run_id="run_1", attempt=1, token="t", client=FakeClient(channel),  # type: ignore[arg-type]
                     loop=asyncio.get_running_loop(),
                     ctx=Context.from_assignment({"run_id": "run_1", "task_id": "nap"}),
                     resumed=resumed)
    return state, resumed


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_run_goes_on_at_its_timer_and_sends_after_the_daemons_answer() -> None:
    channel = FakeChannel(True)
    state, resumed = _state(channel)
    result = await sdk_waits._await_resume(state, resumed, "wp_1", time.time() + 0.01)
    assert result == DUE  # no answer awaited
    send = asyncio.ensure_future(state.run_call("logs", {"attempt": 1, "entries": []}))
    await _turns()
    assert channel.sent == [("timerDue", "wp_1")] and not send.done()
    channel.release.set()
    await asyncio.wait_for(send, 10)
    assert channel.sent == [("timerDue", "wp_1"), ("call", "logs")]
    assert state.settling is None
    # the daemon's own resume for that wait comes late: the next wait neither reads nor takes it
    resumed.word = ("wp_1", DUE)
    resumed.set()
    nxt = asyncio.ensure_future(sdk_waits._await_resume(state, resumed, "wp_2"))
    await _turns()
    assert not nxt.done()
    resumed.word = ("wp_2", {**DUE, "output": "2"})
    resumed.set()
    assert (await asyncio.wait_for(nxt, 10))["output"] == "2"


async def test_gone_drops_the_attempt() -> None:
    channel = FakeChannel(AttemptGone("canceled"))
    state, resumed = _state(channel)

    async def run() -> None:
        await sdk_waits._await_resume(state, resumed, "wp_1", time.time() + 0.01)
        await asyncio.Event().wait()  # the task's code goes on (and would run on)

    task = asyncio.ensure_future(run())
    await _turns()
    channel.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert state.gone
    with pytest.raises(AttemptGone):
        await state.settled()  # nothing more of it is sent


async def test_a_word_the_daemon_does_not_take_waits_for_its_resume() -> None:
    channel = FakeChannel(False)  # no slot now (or 501, or the channel closed)
    channel.release.set()
    state, resumed = _state(channel)
    assert await sdk_waits._await_resume(state, resumed, "wp_1", time.time() + 0.01) == DUE
    settled = asyncio.ensure_future(state.settled())
    await _turns()
    assert not settled.done()
    resumed.word = ("wp_1", DUE)
    resumed.set()
    await asyncio.wait_for(settled, 10)
    assert state.settling is None


async def test_the_daemons_word_first_cancels_the_timer() -> None:
    channel = FakeChannel(True)
    state, resumed = _state(channel)
    resumed.word = ("wp_1", DUE)
    resumed.set()
    assert await sdk_waits._await_resume(state, resumed, "wp_1", time.time() + 60) == DUE
    assert channel.sent == [] and state.settling is None and not state.own_timers
