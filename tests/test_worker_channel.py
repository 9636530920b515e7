"""A shared process's channel (docs/worker-protocol.md, "The channel"): the daemon's side
(api/channel.py) under a real HTTP server on a free port, the runtime's (runtime/channel.py,
runtime/completions.py) as its client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, T0, InProcessServices
from trigger_local import packet_store, protocol
from trigger_local.api.app import create_app
from trigger_local.api.auth import run_token, worker_token
from trigger_local.clock import FakeClock
from trigger_local.errors import (
    AttemptGone,
    AuthenticationError,
    ChannelClosed,
    NotFoundError,
    ValidationError,
)
from trigger_local.http_server import HttpServer, bind
from trigger_local.runtime.channel import Channel
from trigger_local.runtime.completions import Completions
from trigger_local.sdk.worker_client import WorkerClient
from trigger_local.store.models import Version

WORKER = "worker_channel"
TOKEN = worker_token(SECRET, WORKER)


class Served:
    def __init__(self, url: str, app: Any, api: httpx.AsyncClient) -> None:
        self.url, self.app, self.api = url, app, api

    def open(self) -> list[str]:
        """The worker ids of the open channels."""
        return sorted(channel.worker_id for channel in self.app.state.channels)

    async def trigger(self) -> None:
        r = await self.api.post("/api/v1/tasks/hello/trigger", json={"payload": {"n": 1}})
        assert r.status_code == 200, r.text

    async def channel(self) -> Channel:
        channel = await Channel.open(self.url, WORKER, TOKEN)
        assert channel is not None
        return channel


@pytest.fixture
async def served(services: InProcessServices, indexed: Version) -> AsyncIterator[Served]:
    app = create_app(services)
    server = HttpServer(app, bind("127.0.0.1", 0))
    await server.start()
    url = f"http://127.0.0.1:{server.sock.getsockname()[1]}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": f"Bearer {SECRET}"}) as api:
            yield Served(url, app, api)
    finally:
        await server.drain(0.2)


def completion(assignment: dict[str, Any], output: str = '"done"') -> dict[str, Any]:
    return {"ok": True, "output": output, "outputType": "application/json",
            "runId": assignment["run_id"], "attempt": assignment["attempt"],
            "runToken": assignment["run_token"]}


async def until(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_poll_then_a_completion_acknowledged_once_committed(
        served: Served, services: InProcessServices) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        assert served.open() == [WORKER]
        assignment = (await channel.poll(0))["assignment"]
        assert assignment["run_token"] == run_token(SECRET, assignment["run_id"], 1)
        results = await channel.complete([completion(assignment)])
        assert results == [{"status": "COMPLETED"}]
        # answered after the commit: the store has it the moment the answer is in
        run = await services.engine.queries.runs.get(assignment["run_id"])
        assert run is not None and (run.status, run.output) == ("COMPLETED", '"done"')
        # the same completion again (a process that never heard the answer): gone, as a 409
        assert await channel.complete([completion(assignment)]) == [{"gone": True}]
    finally:
        await channel.close()
    await until(lambda: not served.open(), "the closed channel to be forgotten")


async def test_completions_of_several_runs_in_one_frame(served: Served,
                                                        services: InProcessServices) -> None:
    for _ in range(3):
        await served.trigger()
    channel = await served.channel()
    try:
        assignments = [(await channel.poll(0))["assignment"] for _ in range(3)]
        batches_before = services.engine.group.batches
        results = await channel.complete([completion(a, f'"{i}"')
                                          for i, a in enumerate(assignments)])
        assert results == [{"status": "COMPLETED"}] * 3
        # finished together: one transaction for the frame, not one per completion
        assert services.engine.group.batches == batches_before + 1
    finally:
        await channel.close()


async def test_a_poll_and_a_completion_in_one_message_are_both_served(
        served: Served, services: InProcessServices) -> None:
    """The runtime sends the frames of one moment as one message, a JSON list
    (trigger_local/outbox.py): the daemon reads each frame of it."""
    for _ in range(2):
        await served.trigger()
    channel = await served.channel()
    try:
        first = (await channel.poll(0))["assignment"]
        sent_before = channel._outbox.messages  # type: ignore[attr-defined]
        answer, results = await asyncio.gather(channel.poll(0),
                                               channel.complete([completion(first)]))
        assert channel._outbox.messages == sent_before + 1  # type: ignore[attr-defined]
        assert results == [{"status": "COMPLETED"}]
        assert answer["assignment"]["run_id"] != first["run_id"]
    finally:
        await channel.close()


async def test_a_refused_frame_gets_its_error_and_the_channel_goes_on(served: Served) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        assignment = (await channel.poll(0))["assignment"]
        with pytest.raises(AuthenticationError, match="Invalid run token"):
            await channel.complete([{**completion(assignment), "runToken": "forged"}])
        assert await channel.complete([completion(assignment)]) == [{"status": "COMPLETED"}]
    finally:
        await channel.close()


async def test_a_run_waits_and_reads_its_wait_on_the_channel(
        served: Served, services: InProcessServices, clock: FakeClock) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        a = (await channel.poll(0))["assignment"]
        rid, token = a["run_id"], a["run_token"]
        with pytest.raises(AuthenticationError):
            await channel.wait(rid, 1, "forged", {"kind": "duration", "until": T0 + 60})
        answer = await channel.wait(rid, 1, token, {"kind": "duration", "until": T0 + 60})
        assert answer["action"] == "hold"
        wp = answer["waitpointId"]
        run = await services.engine.queries.runs.get(rid)
        assert run is not None and run.status == "WAITING"
        assert await channel.read_wait(rid, token, wp) == {"done": False}
        clock.advance(61)
        assert await services.engine.tick_timers() >= 1
        for run in await services.engine.dequeue(10):  # what the dispatcher does
            assert await services.engine.resume_held(run) is not None
        answer = await channel.read_wait(rid, token, wp)
        assert answer["done"] is True and answer["result"]["ok"] is True
        with pytest.raises(AuthenticationError):
            await channel.read_wait(rid, "forged", wp)
    finally:
        await channel.close()


async def test_run_calls_on_the_channel_are_checked_and_committed_before_their_answer(
        served: Served, services: InProcessServices) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        a = (await channel.poll(0))["assignment"]
        rid, token = a["run_id"], a["run_token"]
        entries = {"attempt": 1, "entries": [{"message": "on the channel", "at": T0}]}
        with pytest.raises(AuthenticationError):
            await channel.call(protocol.LOGS, rid, 1, "forged", entries)
        assert await services.engine.queries.logs.for_run(rid, 0, 10) == []  # nothing done
        assert await channel.call(protocol.LOGS, rid, 1, token, entries) == {}
        assert [e.message for e in await services.engine.queries.logs.for_run(rid, 0, 10)] == [
            "on the channel"]
        answer = await channel.call(protocol.METADATA, rid, 1, token, {"metadata": {"a": 1}})
        assert answer == {"metadata": {"a": 1}}
        child = await channel.call(protocol.TRIGGER, rid, 1, token,
                                   {"task": "hello", "payload": "{}"})
        stored = await services.engine.queries.runs.get(child["id"])
        assert stored is not None and stored.parent_run_id == rid
        with pytest.raises(ValidationError, match="name one of"):
            await channel.call("nope", rid, 1, token, {})
    finally:
        await channel.close()


async def test_a_wrong_worker_token_opens_no_channel(served: Served) -> None:
    assert await Channel.open(served.url, WORKER, "forged") is None
    assert await Channel.open(served.url, "worker_other", TOKEN) is None
    assert served.open() == []


async def test_retire_is_answered_and_the_channel_closes(served: Served,
                                                         services: InProcessServices) -> None:
    services.retire.add(WORKER)
    channel = await served.channel()
    try:
        assert await channel.poll(0) == {"retire": True}
        with pytest.raises(ChannelClosed):
            await channel.poll(0)
    finally:
        await channel.close()


async def test_a_draining_daemon_closes_every_channel(served: Served,
                                                      services: InProcessServices) -> None:
    idle, polling = await served.channel(), await served.channel()
    try:
        waiting = asyncio.create_task(polling.poll(0))  # nothing queued: the poll waits on
        await asyncio.sleep(0)
        services.engine.hub.drain()
        await until(lambda: idle.closed and polling.closed, "both channels to close")
        with pytest.raises(ChannelClosed):
            await waiting
        assert served.open() == []
    finally:
        await idle.close()
        await polling.close()


def _raw_channel(url: str) -> socket.socket:
    """A WebSocket handshake by hand, so the test can send half a frame."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /engine/v1/workers/{WORKER}/channel HTTP/1.1\r\nHost: {host}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_process_that_dies_mid_frame_leaves_its_run_alone(
        served: Served, services: InProcessServices) -> None:
    await served.trigger()
    channel = await served.channel()
    assignment = (await channel.poll(0))["assignment"]
    await channel.close()
    await until(lambda: not served.open(), "the first channel to close")
    sock = await asyncio.to_thread(_raw_channel, served.url)
    await until(lambda: served.open() == [WORKER], "the raw channel to open")
    # a masked text frame that says 200 bytes, of which 12 arrive before the process dies
    sock.sendall(bytes([0x81, 0x80 | 126]) + (200).to_bytes(2, "big") + os.urandom(4)
                 + b'{"id": 1, "c')
    sock.close()
    await until(lambda: not served.open(), "the half-written channel to close")
    run = await services.engine.queries.runs.get(assignment["run_id"])
    assert run is not None and run.status == "EXECUTING"  # nothing half-read was acted on
    channel = await served.channel()  # the next process (or the same, again) is served
    try:
        assert await channel.complete([completion(assignment)]) == [{"status": "COMPLETED"}]
    finally:
        await channel.close()


async def test_completions_ending_together_make_one_frame() -> None:
    sent: list[list[dict[str, Any]]] = []

    class Recording:
        async def complete(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            sent.append(items)
            return [{"status": "COMPLETED"} for _ in items]

    recording = Recording()
    completions = Completions(WorkerClient("http://127.0.0.1:9"), WORKER, TOKEN,
                              lambda: recording)  # type: ignore[arg-type, return-value]
    runs = [{"run_id": f"run_{i}", "attempt": 1, "run_token": "t"} for i in range(5)]
    results = await asyncio.gather(*(completions.send(a, {"ok": True}) for a in runs))
    assert results == [{"status": "COMPLETED"}] * 5
    assert [[item["runId"] for item in frame] for frame in sent] == [
        [f"run_{i}" for i in range(5)]]


async def test_a_completion_whose_channel_closed_goes_over_http(
        served: Served, services: InProcessServices) -> None:
    await served.trigger()
    channel = await served.channel()
    assignment = (await channel.poll(0))["assignment"]
    await channel.close()
    client = WorkerClient(served.url, orphan_timeout=5)
    try:
        completions = Completions(client, WORKER, TOKEN, lambda: channel)
        assert await completions.send(assignment, {"ok": True, "output": '"late"'}) == {
            "status": "COMPLETED"}
    finally:
        await client.aclose()
    run = await services.engine.queries.runs.get(assignment["run_id"])
    assert run is not None and run.output == '"late"'


class _Answering:
    """A connection whose daemon answers every frame with `answer` (the edge of the channel)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer, self.frames = answer, asyncio.Queue[str]()

    async def send(self, text: str) -> None:
        frame_id = json.loads(text)["id"]
        self.frames.put_nowait(json.dumps({"id": frame_id, **self.answer}))

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> str:
        return await self.frames.get()

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(("status", "raised"), [(507, ChannelClosed), (503, ChannelClosed),
                                                (409, AttemptGone)])
async def test_answers_a_later_try_may_change_go_over_http(status: int,
                                                           raised: type[BaseException]) -> None:
    # a full disk or a stopping daemon: the caller sends it over HTTP, whose client retries it
    channel = Channel(_Answering({"status": status, "error": "no", "code": "x"}))
    try:
        with pytest.raises(raised):
            await channel.read_wait("run_1", "t", "waitpoint_1")
    finally:
        await channel.close()


async def test_a_frame_the_daemon_does_not_know_is_answered_and_goes_over_http(
        served: Served) -> None:
    # a newer runtime's kind of frame: answered 501 at once (a process must never wait forever
    # for an answer), which the runtime's channel turns into "make the call over HTTP"
    channel = await served.channel()
    try:
        with pytest.raises(ChannelClosed, match="over HTTP"):
            await channel._ask({"later": {}})
        assert not channel.closed  # the channel goes on
    finally:
        await channel.close()


async def test_a_task_cannot_give_its_child_another_projects_packet(
        served: Served, services: InProcessServices) -> None:
    """A child trigger's (or batch item's) `application/store` payload naming a packet of
    another project is 404, as that packet is to the run's project key: the child's task and
    its `payloadPresignedUrl` would read it (api/packets.py `check_payload_packets`)."""
    home = services.settings.home
    packet_store.write(home, "theirs/payload.json", b'{"secret": 1}', "application/json",
                       "proj_other")
    await served.trigger()
    channel = await served.channel()
    try:
        a = (await channel.poll(0))["assignment"]
        rid, token = a["run_id"], a["run_token"]
        stored = {"payload": "theirs/payload.json", "payloadType": packet_store.STORE}
        with pytest.raises(NotFoundError, match="Packet not found"):
            await channel.call(protocol.TRIGGER, rid, 1, token, {"task": "hello", **stored})
        with pytest.raises(NotFoundError, match="Packet not found"):
            await channel.call(protocol.BATCH, rid, 1, token,
                               {"items": [{"task": "hello", **stored}]})
        listed = (await served.api.get("/api/v1/runs")).json()["data"]
        assert [r["id"] for r in listed] == [rid]  # no child made
        run = await services.engine.queries.runs.get(rid)
        assert run is not None
        packet_store.write(home, "ours/payload.json", b"{}", "application/json", run.project)
        child = await channel.call(protocol.TRIGGER, rid, 1, token,
                                   {"task": "hello", **stored, "payload": "ours/payload.json"})
        assert child["id"] != rid
    finally:
        await channel.close()
