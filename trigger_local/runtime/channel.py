"""A shared process's channel to the daemon (docs/worker-protocol.md, "The channel"): one
WebSocket carrying its polls, its completions, its runs' waits and their run calls (logs,
metadata, child triggers and batches, steps: trigger_local/protocol.py), so a run costs the
daemon a few frames, not HTTP requests.

The channel is an optimisation, never a requirement: it opens only once the process knows it is
shared (its first poll's answer carried messages); when it cannot open (no `websockets`, a
daemon that refuses it) or closes (the daemon stopped or died), the process polls over HTTP, as
before, and a completion in flight is sent again over HTTP — where a completion the daemon had
already committed is answered `gone`, and dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from .. import protocol
from ..errors import AttemptGone, ChannelClosed, error_from_response
from ..outbox import Outbox, frames_of
from ..sdk import log_bursts
from ..sdk.worker_client import jsonable
from ..strict_json import dumps_js

OPEN_TIMEOUT_S = 5.0
#: completions larger than this go over HTTP (whose limit is the daemon's payload limit)
MAX_FRAME_BYTES = 1 << 20


def max_frame_chars() -> int:
    """The largest message sent on the channel: 1 MiB, or the daemon's payload limit when
    smaller (it closes the channel on a larger one)."""
    return min(MAX_FRAME_BYTES, log_bursts.limit())


#: answers a later try may change: the frame's work goes over HTTP, which retries them
RETRIED = frozenset({502, 503, 504, 507, protocol.UNKNOWN_FRAME})
#: a frame the daemon has not answered in this long (it answers once the work is committed,
#: in milliseconds): the daemon dropped it, so the channel is closed and the work goes over HTTP
ANSWER_TIMEOUT_S = 60.0
#: loop turns a frame to send waits for others: a poll and the completions of the runs its
#: answer started are sent within two
SETTLE_TURNS = 2


class Channel:
    def __init__(self, connection: Any, answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self._ws = connection
        self.answer_timeout_s = answer_timeout_s
        self._answers: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._results: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.closed = False
        self._max_chars = max_frame_chars()
        self._outbox = Outbox(self._ws.send, SETTLE_TURNS, self._max_chars)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, daemon_url: str, worker_id: str, token: str) -> Channel | None:
        """The channel, or None when it cannot be had (then the process polls over HTTP)."""
        url = urlsplit(daemon_url)
        if url.scheme != "http":
            return None
        try:
            from websockets.asyncio.client import connect
        except ImportError:
            return None
        uri = f"ws://{url.netloc}{url.path.rstrip('/')}/engine/v1/workers/{worker_id}/channel"
        try:
            connection = await connect(uri, additional_headers={"Authorization": f"Bearer {token}"},
                                       compression=None, proxy=None, max_size=None,
                                       ping_interval=None, open_timeout=OPEN_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - refused, unreachable, an old daemon: poll over HTTP
            return None
        return cls(connection)

    async def poll(self, ack: int) -> dict[str, Any]:
        """The answer to a poll, as `next` answers it (`messages` or `retire`); waits as long as
        it takes (the daemon answers only when there is something)."""
        await self._send(protocol.poll_frame(ack))
        answer = await self._answers.get()
        if answer is None:
            self._answers.put_nowait(None)  # closed: every later poll learns it too
            raise ChannelClosed()
        return answer

    async def complete(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results of `…/workers/{wid}/complete` for `items`, once the daemon committed
        them. Raises ChannelClosed (send them over HTTP) or the daemon's error."""
        answer = await self._ask(protocol.completions_body(items))
        results = answer.get("results")
        if not isinstance(results, list):
            raise ValueError(f"the daemon answered completions with {answer!r}")
        return [r if isinstance(r, dict) else {} for r in results]

    async def read_wait(self, run_id: str, token: str, waitpoint_id: str) -> dict[str, Any]:
        """`GET …/runs/{rid}/waits/{wpid}?wait_s=0`'s answer, on the channel."""
        return await self._ask(protocol.read_wait_frame(run_id, token, waitpoint_id))

    async def wait(self, run_id: str, attempt: int, token: str,
                   body: dict[str, Any]) -> dict[str, Any]:
        """`POST …/runs/{rid}/attempts/{n}/wait`'s answer, on the channel."""
        return await self._ask(protocol.wait_frame(run_id, attempt, token, body))

    async def timer_due(self, run_id: str, attempt: int, token: str,
                        waitpoint_id: str) -> bool:
        """Tell the daemon the timer this process kept for the run's duration wait fired (the
        run went on): True once the run is EXECUTING there; False: it waits for its slot (its
        resume follows). Raises AttemptGone (the run ended), ChannelClosed, or the error."""
        answer = await self._ask(protocol.timer_due_frame(run_id, attempt, token, waitpoint_id))
        return bool(answer.get("resumed"))

    async def call(self, name: str, run_id: str, attempt: int, token: str,
                   body: dict[str, Any]) -> dict[str, Any]:
        """Run call `name` (protocol.RUN_CALLS: logs, metadata, a child trigger or batch, a
        step) on the channel: its route's answer, once the daemon committed it. Raises
        ChannelClosed (make the call over HTTP) or the daemon's error."""
        return protocol.call_result(
            await self._ask(protocol.call_frame(name, run_id, attempt, token, body)))

    async def _ask(self, frame: dict[str, Any]) -> dict[str, Any]:
        frame_id = next(self._ids)
        # as the HTTP client writes a body: anything a log attribute holds becomes its repr
        text = dumps_js({"id": frame_id, **frame}, default=jsonable)
        if len(text) > self._max_chars:
            raise ChannelClosed("too large for the channel")
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[frame_id] = done
        try:
            await self._send_text(text)
            answer = await self._answer(done, frame)
        finally:
            self._results.pop(frame_id, None)
            if done.done() and not done.cancelled():
                done.exception()  # seen: a failed send closed the channel under it
        answer.pop("id", None)
        if "status" not in answer:
            return answer
        if answer["status"] == 409:  # as over HTTP: the attempt is no longer current
            raise AttemptGone(str(answer.get("error")))
        if answer["status"] in RETRIED:  # over HTTP, whose client retries it (a full disk)
            raise ChannelClosed(str(answer.get("error")))
        raise error_from_response(int(answer["status"] or 500), answer)

    async def _answer(self, done: asyncio.Future[dict[str, Any]],
                      frame: dict[str, Any]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(asyncio.shield(done), self.answer_timeout_s)
        except TimeoutError:
            done.cancel()
            kind = next(iter(frame), "?")
            message = (f"the daemon did not answer a {kind!r} frame on the channel in "
                       f"{self.answer_timeout_s:g} s: channel closed, going on over HTTP")
            print(f"trigger-local runtime: {message}", file=sys.stderr, flush=True)
            await self.close()
            raise ChannelClosed(message) from None

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_text(dumps_js(frame))

    async def _send_text(self, text: str) -> None:
        """Written with the frames sent in the same loop turns (a poll and the completions of
        the runs it just started: trigger_local/outbox.py)."""
        if self.closed:
            raise ChannelClosed()
        try:
            await self._outbox.send(text)
        except Exception as exc:  # noqa: BLE001 - any failure to send: the channel is done
            await self.close()
            raise ChannelClosed() from exc

    async def _read(self) -> None:
        try:
            async for text in self._ws:
                for frame in frames_of(json.loads(text)):  # one frame, or a list of them
                    self._take(frame)
        except Exception:  # noqa: BLE001, S110 - the connection broke: what waits learns it below
            pass
        finally:
            self._closed()

    def _take(self, frame: Any) -> None:
        if protocol.is_answer(frame):
            done = self._results.get(frame["id"])
            if done is not None and not done.done():
                done.set_result(frame)
        else:
            self._answers.put_nowait(frame)

    def _closed(self) -> None:
        self.closed = True
        self._answers.put_nowait(None)
        for done in self._results.values():
            if not done.done():
                done.set_exception(ChannelClosed())

    async def close(self) -> None:
        if not self.closed:
            self._closed()
        self._reader.cancel()
        try:
            await asyncio.wait_for(self._ws.close(), 1.0)
        except Exception:  # noqa: BLE001, S110 - closing a broken connection: nothing to do
            pass
