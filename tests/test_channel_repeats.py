"""Run calls whose channel frame went wrong (docs/worker-protocol.md, "The channel"): a burst of
log lines the daemon committed just before the channel closed is stored once when the runtime
sends it again over HTTP; a daemon that does not know a frame, or never answers it, sends the
runtime to HTTP instead of leaving it waiting. The daemon is a real HTTP server on a free port
(tests/test_worker_channel.py's `served`), the runtime's RunState and Channel its client."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.conftest import InProcessServices
from tests.test_worker_channel import TOKEN, WORKER, Served, served, until
from trigger_local import protocol
from trigger_local.errors import ChannelClosed
from trigger_local.runtime.channel import Channel
from trigger_local.sdk.context import Context, RunState
from trigger_local.sdk.worker_client import WorkerClient

__all__ = ["served"]  # the fixture, used by name


class Intercepted:
    """A real channel connection whose answers pass through `hold`: an answer it returns
    False for never reaches the runtime (and the connection closes once `closing` is set)."""

    def __init__(self, real: Any, hold: Callable[[dict[str, Any]], bool]) -> None:
        self.real, self.hold = real, hold
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        await self.real.send(text)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._answers()

    async def _answers(self) -> AsyncIterator[str]:
        async for text in self.real:
            if self.hold(json.loads(text)):
                yield text

    async def close(self) -> None:
        await self.real.close()


async def _run_state(served: Served, channel: Channel | None) -> tuple[RunState, WorkerClient]:
    await served.trigger()
    opened = await served.channel()
    assignment = (await opened.poll(0))["assignment"]
    await opened.close()
    client = WorkerClient(served.url, orphan_timeout=10)
    client.channel = channel
    state = RunState(run_id=assignment["run_id"], attempt=1, token=assignment["run_token"],
                     client=client, loop=asyncio.get_running_loop(),
                     ctx=Context.from_assignment({"run_id": assignment["run_id"],
                                                  "task_id": "hello"}))
    return state, client


async def _messages(services: InProcessServices, run_id: str) -> list[str]:
    return [e.message for e in await services.engine.queries.logs.for_run(run_id, 0, 100)]


async def test_a_burst_committed_before_its_channel_closed_is_stored_once(
        served: Served, services: InProcessServices) -> None:
    held: list[int] = []

    def hold(answer: dict[str, Any]) -> bool:
        if "answer" in answer:  # a run call's answer: lost with the channel
            held.append(answer["id"])
            return False
        return True

    connection = Intercepted(await _reopen(served), hold)
    channel = Channel(connection)
    state, client = await _run_state(served, None)
    try:
        state.add_log({"message": "first", "at": 1.0})
        await state.logs.flush()  # over HTTP: no channel yet for this burst
        client.channel = channel
        state.add_log({"message": "second", "at": 2.0})
        state.add_log({"message": "third", "at": 3.0})
        sending = asyncio.create_task(state.logs.flush())
        await until(lambda: bool(held), "the daemon to answer the burst on the channel")
        # answered once committed: the lines are stored, the answer never reached the runtime
        assert await _messages(services, state.run_id) == ["first", "second", "third"]
        await connection.real.close()  # the channel closes: the burst goes again over HTTP
        await asyncio.wait_for(sending, 30)
        state.add_log({"message": "fourth", "at": 4.0})
        await state.logs.flush()  # channel closed: over HTTP
        assert await _messages(services, state.run_id) == ["first", "second", "third", "fourth"]
    finally:
        await channel.close()
        await client.aclose()


async def test_a_burst_sent_again_stores_the_lines_the_daemon_lacks(
        served: Served, services: InProcessServices) -> None:
    state, client = await _run_state(served, None)
    try:
        body = {"attempt": 1, "entries": [{"message": m, "at": 1.0} for m in ("a", "b")],
                "first": 0}
        await client.run_call("POST", state.run_id, "logs", state.token, body)
        # the same two lines, and a third the first try did not carry, sent again
        again = {**body, "again": True,
                 "entries": [{"message": m, "at": 1.0} for m in ("a", "b", "c")]}
        await client.run_call("POST", state.run_id, "logs", state.token, again)
        # a burst sent again that the daemon never had: all of it is stored
        await client.run_call("POST", state.run_id, "logs", state.token, {
            "attempt": 1, "entries": [{"message": "d", "at": 1.0}], "first": 3, "again": True})
        assert await _messages(services, state.run_id) == ["a", "b", "c", "d"]
        with pytest.raises(Exception, match="first must be a whole number"):
            await client.run_call("POST", state.run_id, "logs", state.token,
                                  {**again, "first": -1})
    finally:
        await client.aclose()


@pytest.mark.parametrize(("odd", "says"), [
    ({"again": True}, "first .* is required with again"),  # no way to tell what it holds
    ({"again": True, "first": None}, "first .* is required with again"),
    # a truthy string; named as JSON writes it (it was Python's 'no')
    ({"again": "no", "first": 0}, 'again must be true or false, not "no"$'),
    ({"again": 1, "first": 0}, "again must be true or false, not 1$"),
    ({"first": -5}, "first must be a whole number"),  # checked with or without again
    ({"first": "abc"}, "first must be a whole number"),
    ({"first": 10**30}, "first must be a whole number")])
async def test_a_burst_with_odd_first_or_again_is_refused_and_stores_nothing(
        served: Served, services: InProcessServices, odd: dict[str, Any], says: str) -> None:
    state, client = await _run_state(served, None)
    try:
        body = {"attempt": 1, "entries": [{"message": m, "at": 1.0} for m in ("a", "b")],
                "first": 0}
        await client.run_call("POST", state.run_id, "logs", state.token, body)
        with pytest.raises(Exception, match=says) as refused:
            await client.run_call("POST", state.run_id, "logs", state.token,
                                  {**{k: v for k, v in body.items() if k != "first"}, **odd})
        assert getattr(refused.value, "status", 422) == 422
        assert await _messages(services, state.run_id) == ["a", "b"]
    finally:
        await client.aclose()


async def test_a_run_call_the_daemon_does_not_know_goes_over_http(
        served: Served, services: InProcessServices) -> None:
    # an older daemon: it answers the `call` frame 501 unknown_frame
    connection = Intercepted(await _reopen(served), lambda answer: True)

    async def send(text: str) -> None:  # the frame never reaches the daemon's call handler
        frame = json.loads(text)
        connection.sent.append(frame)
        if "call" in frame:
            frame = {"id": frame["id"], "later": frame["call"]}
        await connection.real.send(json.dumps(frame))

    connection.send = send  # type: ignore[method-assign]
    channel = Channel(connection)
    state, client = await _run_state(served, channel)
    try:
        state.add_log({"message": "over http", "at": 1.0})
        await asyncio.wait_for(state.logs.flush(), 30)
        assert await _messages(services, state.run_id) == ["over http"]
        assert any("call" in frame for frame in connection.sent)  # the channel was tried
        assert not channel.closed  # and goes on for what it knows
    finally:
        await channel.close()
        await client.aclose()


async def test_a_frame_never_answered_times_out_and_goes_over_http(
        served: Served, services: InProcessServices,
        capsys: pytest.CaptureFixture[str]) -> None:
    # a daemon that drops the frame: no answer ever comes
    connection = Intercepted(await _reopen(served), lambda answer: "id" not in answer)
    channel = Channel(connection, answer_timeout_s=0.5)
    state, client = await _run_state(served, channel)
    try:
        with pytest.raises(ChannelClosed, match="did not answer a 'call' frame"):
            await asyncio.wait_for(
                channel.call(protocol.METADATA, state.run_id, 1, state.token,
                             {"metadata": {"a": 1}}), 30)
        assert channel.closed
        assert "did not answer" in capsys.readouterr().err
        # a run call on such a channel is made over HTTP once the frame timed out
        client.channel = Channel(Intercepted(await _reopen(served), lambda a: "id" not in a),
                                 answer_timeout_s=0.5)
        answer = await asyncio.wait_for(
            state.run_call(protocol.METADATA, {"metadata": {"b": 2}}), 30)
        assert answer == {"metadata": {"b": 2}}
        run = await services.engine.queries.runs.get(state.run_id)
        assert run is not None and run.metadata == {"b": 2}
        await client.channel.close()  # type: ignore[attr-defined]
    finally:
        await channel.close()
        await client.aclose()


async def _reopen(served: Served) -> Any:
    """A real connection to the daemon's channel, as Channel.open makes it."""
    uri = served.url.replace("http://", "ws://") + f"/engine/v1/workers/{WORKER}/channel"
    return await connect(uri, additional_headers={"Authorization": f"Bearer {TOKEN}"})


class _Broken:
    """A connection whose sends fail (the daemon went away mid-frame)."""

    async def send(self, text: str) -> None:
        raise ConnectionResetError("gone")

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> str:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def close(self) -> None:
        pass


async def test_a_send_that_fails_leaves_no_unretrieved_error() -> None:
    # each failed send used to leave "Future exception was never retrieved ... ChannelClosed"
    # in the task process's log
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        channel = Channel(_Broken())
        with pytest.raises(ChannelClosed):
            await channel.call(protocol.LOGS, "run_1", 1, "t", {"entries": []})
        await channel.close()
        del channel
        gc.collect()
        await asyncio.sleep(0)
        assert [c.get("message") for c in reported] == []
    finally:
        loop.set_exception_handler(None)
