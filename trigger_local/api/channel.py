"""The channel of a shared task process (docs/worker-protocol.md, "The channel"): one WebSocket
per process, `/engine/v1/workers/{wid}/channel`, carrying what its `next` polls and
`…/workers/{wid}/complete` requests carry, without an HTTP request's cost per message.

Frames are JSON text. The process sends `{"poll": ack}` (its next poll, `ack` as for `next`; one
at a time), `{"id": n, "completions": […]}` (the body of `…/workers/{wid}/complete`),
`{"id": n, "wait": {…}}` (the body of `POST …/attempts/{n}/wait` plus runId, attempt, runToken)
and `{"id": n, "readWait": {"runId", "runToken", "waitpointId"}}` (a resumed run's one read of
its wait, `GET …/waits/{wpid}?wait_s=0`). The daemon answers a poll with `{"messages": […]}` or
`{"retire": true}` — a poll that finds nothing goes on waiting, it is not answered empty — and
frame n with `{"id": n, "results": […]}` once every completion in it is committed (a wait read:
`{"id": n, "done", "result"?}`), or `{"id": n, "status", "error", "code"}` when it is refused.
`{"id": n, "timerDue": {"runId", "attempt", "runToken", "waitpointId"}}`: the process's own timer
of a run's duration wait fired and the run went on (docs/waits.md) → `{"id": n, "resumed"}`.
A stopping daemon closes the channel: the process polls over HTTP meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import protocol
from ..disk import disk_full_error
from ..errors import PAYLOAD_LIMIT_SETTING, TriggerLocalError, ValidationError
from ..outbox import frames_of
from ..strict_json import dumps_answer, loads_strict
from ..supervise import report
from . import run_calls
from .common import body_limit
from .services import DaemonServices
from .worker import check_worker, finish_many, next_answer, run_auth, wait_answer

router = APIRouter(tags=["worker"])

POLL_S = 20.0  # a poll that finds nothing is asked again after this (idle accounting)
REFUSED = 4401  # the close code of a handshake with a wrong worker token (the client sees 403)
INVALID = 1007  # the close code of a frame that is not JSON the daemon takes (RFC 6455 7.4.1)
TOO_BIG = 1009  # the close code of a frame over the payload limit and its envelope
_NOTHING = protocol.nothing_answer()


@router.websocket("/engine/v1/workers/{worker_id}/channel")
async def channel(websocket: WebSocket, worker_id: str) -> None:
    svc: DaemonServices = websocket.app.state.services
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    try:
        check_worker(svc, worker_id, token.strip() if scheme.lower() == "bearer" else "")
    except TriggerLocalError:
        await websocket.close(code=REFUSED)
        return
    await websocket.accept()
    open_now: set[Channel] = websocket.app.state.channels  # for `GET /api/v1/local/status`
    this = Channel(websocket, svc, worker_id)
    open_now.add(this)
    try:
        await this.serve()
    finally:
        open_now.discard(this)


def _over(raw: str | bytes, limit: int) -> bool:
    """Whether a frame is over `limit` bytes as UTF-8 (a character is at most 4 bytes: most
    frames need no encoding to tell)."""
    if isinstance(raw, bytes) or len(raw) > limit or len(raw) * 4 <= limit:
        return len(raw) > limit
    return len(raw.encode("utf-8", "surrogatepass")) > limit


def _whole(value: Any) -> bool:
    """An attempt number: a JSON integer from 1 (not `true`, which Python counts as 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Channel:
    """One process's channel: frames read in order; polls answered one after another by one
    task; each completion frame finished by a task of its own, so a commit never holds up the
    next poll's answer."""

    def __init__(self, websocket: WebSocket, svc: DaemonServices, worker_id: str) -> None:
        self.ws, self.svc, self.worker_id = websocket, svc, worker_id
        self.polls: asyncio.Queue[int | None] = asyncio.Queue()
        self._sending = asyncio.Lock()
        self._polling = False  # a poll waits for this process's next messages
        self._held: list[str] = []  # completions' answers waiting for that poll's (`_hold`)
        #: WebSocket messages written, and the frames in them (`GET /api/v1/local/status`)
        self.sent: Counter[str] = websocket.app.state.channel_sent
        self._jobs: set[asyncio.Task[None]] = set()
        #: frames received, by kind (a run call by its name), and the WebSocket messages they
        #: came in (`messages`: a process sends the frames of one moment together):
        #: `GET /api/v1/local/status`
        self.frames: Counter[str] = websocket.app.state.channel_frames
        self._handlers: dict[str, Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]] = {
            protocol.COMPLETIONS: self._complete, protocol.WAIT: self._wait,
            protocol.READ_WAIT: self._read_wait, protocol.CALL: self._call,
            protocol.TIMER_DUE: self._timer_due}

    async def serve(self) -> None:
        tasks = [asyncio.create_task(self._answer_polls()), asyncio.create_task(self._read()),
                 # a draining daemon closes every channel: its processes hold no connection
                 asyncio.create_task(self.svc.engine.hub.draining.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # completions in flight are committed all the same (GroupCommit answers nobody);
            # the process, whose connection is gone, sends them again and hears `gone`
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _read(self) -> None:
        limit = body_limit(self.svc)  # as an HTTP body: the payload limit and an envelope
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message.get("type") == "websocket.disconnect":
                return
            self.frames["messages"] += 1
            text = message.get("text")
            raw = text if text is not None else message.get("bytes") or b""
            if _over(raw, limit):
                return await self._refuse(TOO_BIG, f"Channel frame over {limit} bytes (the "
                                                   f"{PAYLOAD_LIMIT_SETTING} limit and an "
                                                   "envelope)")
            try:  # one frame, or a list of them (trigger_local/outbox.py)
                frames = frames_of(loads_strict(raw, "Channel frame"))
                if not all(isinstance(frame, dict) for frame in frames):
                    raise ValueError("Channel frame is not a JSON object or a list of them")
            except (TriggerLocalError, ValueError) as exc:
                # a process that speaks something else: closed, saying why; it polls over HTTP
                return await self._refuse(INVALID, str(exc))
            for frame in frames:
                await self._take(cast(dict[str, Any], frame))

    async def _refuse(self, code: int, reason: str) -> None:
        # a close frame's reason is at most 123 bytes (RFC 6455 5.5)
        cut = reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.close(code=code, reason=cut)

    async def _take(self, frame: dict[str, Any]) -> None:
        parsed = protocol.Frame.parse(frame)
        if parsed is None:  # a kind this daemon does not know (a newer runtime's): the
            if "id" in frame:  # process makes that call over HTTP instead
                await self._send(protocol.unknown_frame(frame["id"]))
            return
        self.frames[parsed.kind] += 1
        if parsed.kind == protocol.POLL:
            self.polls.put_nowait(parsed.ack)
        else:
            self._start(parsed.id, self._handlers[parsed.kind](parsed.body),
                        hold=parsed.kind == protocol.COMPLETIONS)

    def _start(self, frame_id: Any, work: Coroutine[Any, Any, dict[str, Any]],
               hold: bool = False) -> None:
        self._keep(asyncio.create_task(self._answer(frame_id, work, hold)))

    def _keep(self, job: asyncio.Task[None]) -> None:
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _answer_polls(self) -> None:
        draining = self.svc.engine.hub.draining
        while True:
            ack = await self.polls.get()
            answer = _NOTHING
            while answer == _NOTHING:
                if draining.is_set() or self.svc.engine.stopping:
                    return  # closed: the process polls the next daemon over HTTP
                self._polling = True
                try:
                    answer = await next_answer(self.ws, self.worker_id, POLL_S, ack)
                finally:
                    self._polling = False
            await self._send(answer)
            if answer.get("retire"):
                return

    async def _complete(self, items: Any) -> dict[str, Any]:
        return {"results": await finish_many(self.svc, run_auth(self.ws), items)}

    async def _wait(self, body: Any) -> dict[str, Any]:
        """`POST …/attempts/{n}/wait` on the channel (its body plus runId, attempt, runToken)."""
        if not isinstance(body, dict) or not _whole(body.get("attempt")):
            raise ValidationError("wait must be the body of …/wait with runId, attempt and "
                                  "runToken")
        run_id, attempt = str(body.get("runId")), int(body["attempt"])
        run_auth(self.ws).check_attempt_token(str(body.get("runToken") or ""), run_id, attempt)
        return await wait_answer(self.svc, run_id, attempt, body)

    async def _timer_due(self, body: Any) -> dict[str, Any]:
        """The timer a run's process kept for its duration wait fired, and the run went on there
        (engine/waits.py `by_process`): `{"resumed": bool}`, or 409 when the attempt is gone."""
        if not isinstance(body, dict) or not _whole(body.get("attempt")):
            raise ValidationError("timerDue must be {runId, attempt, runToken, waitpointId}")
        run_id, attempt = str(body.get("runId")), int(body["attempt"])
        run_auth(self.ws).check_attempt_token(str(body.get("runToken") or ""), run_id, attempt)
        return {"resumed": await self.svc.engine.timer_due(run_id, attempt,
                                                           str(body.get("waitpointId")))}

    async def _call(self, raw: Any) -> dict[str, Any]:
        """A run call (logs, metadata, a child trigger or batch, a step) on the channel, checked
        as its HTTP route checks it, answered once what it did is committed."""
        try:
            call = protocol.RunCall.parse(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        self.frames[f"call:{call.name}"] += 1
        checker = run_auth(self.ws)
        attempt: int | None = call.attempt
        if call.name in run_calls.BY_ATTEMPT:
            checker.check_attempt_token(call.token, call.run_id, call.attempt)
        else:
            attempt = await checker.check_token(call.token, self.svc.engine, call.run_id)
        return protocol.call_answer(
            await run_calls.HANDLERS[call.name](self.svc, call.run_id, attempt, call.body))

    async def _read_wait(self, body: Any) -> dict[str, Any]:
        """`GET …/runs/{rid}/waits/{wpid}?wait_s=0` on the channel: what a run told to resume
        reads (docs/worker-protocol.md), without a request of its own."""
        if not isinstance(body, dict):
            raise ValidationError("wait must be {runId, runToken, waitpointId}")
        run_id, waitpoint_id = str(body.get("runId")), str(body.get("waitpointId"))
        await run_auth(self.ws).check_token(str(body.get("runToken") or ""), self.svc.engine,
                                            run_id)
        result = await self.svc.engine.wait_result(run_id, waitpoint_id)
        return {"done": True, "result": result} if result is not None else {"done": False}

    async def _answer(self, frame_id: Any, work: Coroutine[Any, Any, dict[str, Any]],
                      hold: bool = False) -> None:
        out: dict[str, Any]
        try:
            out = await work
        except TriggerLocalError as exc:
            out = {"status": exc.status, **exc.to_body()}
        except Exception as exc:  # noqa: BLE001 - the process gets an answer, the log the trace
            full = disk_full_error(exc, self.svc.settings.home)
            if full is not None:  # nothing was written: the process sends it again later
                out = {"status": full.status, **full.to_body()}
            else:
                report("error", "unhandled error", path="channel frame", error=repr(exc),
                       exc_info=exc)
                out = {"status": 500, "error": "Something went wrong", "code": "internal"}
        if hold and self._polling:
            self._hold(dumps_answer(protocol.answer_frame(frame_id, out)))
        else:
            await self._send(protocol.answer_frame(frame_id, out))

    def _hold(self, text: str) -> None:
        """A completions frame's answer waits for the poll's, to leave in one message: the
        commit that finished the runs handed their slots to the next runs (engine/handover.py),
        and the pool queued their assignments for this process in the loop turn its answer was
        made in (engine/unit.py answers the starts first), so the waiting poll is answered in the
        next turn. A turn without one writes the held answers alone (issue #13: one send per
        process per commit)."""
        self._held.append(text)
        if len(self._held) == 1:
            asyncio.get_running_loop().call_soon(self._release)

    def _release(self) -> None:
        if self._held:  # no poll answer took them
            self._keep(asyncio.get_running_loop().create_task(self._write(None)))

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._write(dumps_answer(frame))

    async def _write(self, text: str | None) -> None:
        # written at once, not gathered with the frames of the next loop turns: under a burst
        # of timers those turns were tens of milliseconds of lateness (issue #13's timers); only
        # completions' answers held for a poll's answer (`_hold`) go with it
        async with self._sending:
            texts, self._held = self._held, []
            if text is not None:
                texts.append(text)
            if not texts:
                return
            self.sent["messages"] += 1
            self.sent["frames"] += len(texts)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.ws.send_text(texts[0] if len(texts) == 1
                                        else "[" + ",".join(texts) + "]")
