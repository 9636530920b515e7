"""The worker channel's outbox (trigger_local/outbox.py): frames sent within a few loop turns
leave as one WebSocket message (a JSON list), a lone frame as itself, in order; a failed write
reaches every sender of its message. Both channel ends read either shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from trigger_local.outbox import Outbox, frames_of
from trigger_local.runtime.channel import Channel


async def test_frames_sent_together_leave_as_one_message() -> None:
    written: list[str] = []

    async def write(text: str) -> None:
        written.append(text)

    outbox = Outbox(write, turns=2)
    await asyncio.gather(outbox.send('{"a":1}'), outbox.send('{"b":2}'), outbox.send('{"c":3}'))
    assert [json.loads(m) for m in written] == [[{"a": 1}, {"b": 2}, {"c": 3}]]
    await outbox.send('{"d":4}')  # alone: as itself, not a list of one
    assert json.loads(written[-1]) == {"d": 4}
    assert (outbox.messages, outbox.frames) == (2, 4)


async def test_frames_sent_together_stay_under_the_message_cap() -> None:
    # the daemon closes a channel whose message is over its payload limit and envelope
    written: list[str] = []

    async def write(text: str) -> None:
        written.append(text)

    outbox = Outbox(write, turns=2, max_chars=25)
    frames = ['{"a":"' + c * 10 + '"}' for c in "xyz"] + ['{"big":"' + "w" * 40 + '"}']
    await asyncio.gather(*(outbox.send(f) for f in frames))
    assert [frame for m in written for frame in frames_of(json.loads(m))] \
        == [json.loads(f) for f in frames]  # all, in order
    assert all(len(m) <= 25 for m in written[:-1]) and len(written) == 4, written
    assert (outbox.messages, outbox.frames) == (4, 4)


async def test_messages_keep_their_order_while_one_is_being_written() -> None:
    written: list[str] = []
    release = asyncio.Event()

    async def write(text: str) -> None:
        if not written:
            await release.wait()  # the first write is slow
        written.append(text)

    outbox = Outbox(write, turns=1)
    first = asyncio.create_task(outbox.send('"1"'))
    await asyncio.sleep(0.01)  # its write has begun
    second = asyncio.create_task(outbox.send('"2"'))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, second)
    assert written == ['"1"', '"2"']


async def test_a_failed_write_reaches_every_sender_of_its_message() -> None:
    async def write(text: str) -> None:
        raise OSError("connection reset")

    outbox = Outbox(write, turns=1)
    results = await asyncio.gather(outbox.send('"x"'), outbox.send('"y"'),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


def test_a_message_holds_one_frame_or_a_list() -> None:
    assert frames_of({"poll": 1}) == [{"poll": 1}]
    assert frames_of([{"id": 1}, {"messages": []}]) == [{"id": 1}, {"messages": []}]


class _Connection:
    """The daemon's edge: messages to deliver to the runtime's channel, frames it sent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[Any] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> str:
        return await self.incoming.get()

    async def close(self) -> None:
        pass


async def test_the_runtime_reads_an_answer_and_a_poll_answer_from_one_message() -> None:
    """What the daemon sends when a completion's commit started the next run: the completion's
    answer and the poll answer with its `assign`, in one message."""
    connection = _Connection()
    channel = Channel(connection)
    try:
        poll = asyncio.create_task(channel.poll(0))
        complete = asyncio.create_task(channel.complete([{"runId": "run_1"}]))
        while not connection.sent:
            await asyncio.sleep(0.001)
        # the poll and the completion were sent in the same turn: one message, a list
        assert [list(f) for f in connection.sent[0]] == [["poll"], ["id", "completions"]]
        assign = {"seq": 3, "type": "assign", "assignment": {"run_id": "run_2"}}
        connection.incoming.put_nowait(json.dumps(
            [{"id": 1, "results": [{"status": "COMPLETED"}]}, {"messages": [assign]}]))
        assert await complete == [{"status": "COMPLETED"}]
        assert await poll == {"messages": [assign]}
    finally:
        await channel.close()
