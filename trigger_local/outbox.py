"""Frames a task process sends on its worker channel within a few turns of its event loop leave
as one WebSocket message (docs/worker-protocol.md, "The channel"): a JSON list of the frames, in
order; a lone frame leaves as itself. The daemon (api/channel.py) reads either. A process's next
poll and the completions of the runs its last answer started are made a turn or two apart: one
message, one send and one receive, instead of two (issue #13: the channel's send and receive
were ~16 % of the daemon's time). The daemon writes its own frames at once: gathering them over
a few loop turns made timers tens of milliseconds late when many fired together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Outbox:
    """Queue texts with `send`; `write` gets them joined, in order, one writer at a time."""

    def __init__(self, write: Callable[[str], Awaitable[None]], turns: int = 1,
                 max_chars: int | None = None) -> None:
        self._write = write
        #: a message joins frames up to this size (the daemon closes the channel on a message
        #: over its payload limit and envelope); a frame larger still leaves alone
        self._max_chars = max_chars
        self._turns = turns  # loop turns the first frame waits for others to join it
        self._texts: list[str] = []
        self._sent: list[asyncio.Future[None]] = []
        self._draining: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self._writing = asyncio.Lock()
        self.messages = 0  # messages written, and the frames in them (tests, the profile)
        self.frames = 0

    async def send(self, text: str) -> None:
        """Once `text` (one frame's JSON) has been written with the frames that joined it;
        raises what the write raised."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._texts.append(text)
        self._sent.append(sent)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(sent)

    async def _drain(self) -> None:
        texts: list[str] = []
        sent: list[asyncio.Future[None]] = []
        try:
            for _ in range(self._turns):
                await asyncio.sleep(0)
            texts, sent = self._take()
            async with self._writing:
                for group in _groups(texts, self._max_chars):
                    await self._write(group[0] if len(group) == 1
                                      else "[" + ",".join(group) + "]")
                    self.messages += 1
        except BaseException as exc:  # the write failed, or the drain was cancelled
            if not sent:
                texts, sent = self._take()
            for done in sent:
                if done.done():
                    continue
                if not isinstance(exc, Exception):
                    done.cancel()
                    continue
                done.set_exception(exc)
                done.exception()  # seen here: a sender that went away need not see it
            if not isinstance(exc, Exception):
                raise
            return
        self.frames += len(texts)
        for done in sent:
            if not done.done():
                done.set_result(None)

    def _take(self) -> tuple[list[str], list[asyncio.Future[None]]]:
        texts, sent = self._texts, self._sent
        self._texts, self._sent, self._draining = [], [], None
        return texts, sent


def _groups(texts: list[str], max_chars: int | None) -> list[list[str]]:
    """`texts` in order, in runs whose joined size is at most `max_chars` (None: one run)."""
    if max_chars is None or sum(len(t) + 1 for t in texts) <= max_chars:
        return [texts]
    groups: list[list[str]] = [[]]
    used = 0
    for text in texts:
        if groups[-1] and used + len(text) + 1 > max_chars:
            groups.append([])
            used = 0
        groups[-1].append(text)
        used += len(text) + 1
    return groups


def frames_of(message: object) -> list[object]:
    """The frames a message holds: its list's items, or itself."""
    return list(message) if isinstance(message, list) else [message]
