"""A worker channel frame the daemon cannot take (not JSON, not an object, a number JSON has no
float for, a number of more than 4,300 digits, nesting too deep, a lone surrogate) closes the
channel with 1007 and a reason that says why, and a frame over the payload limit plus its
envelope with 1009, as HTTP answers 400 / 413; a `timerDue` whose attempt is `true` is refused,
not taken as attempt 1. Against a real daemon, with a raw WebSocket client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from trigger_local.api.auth import run_token, worker_token

from .conftest import DaemonProcess, wait_for

LIMIT = 64 * 1024  # the daemon's payload limit here: frames over it and 64 KiB are refused


async def _close_of(daemon: DaemonProcess, frame: str | bytes) -> tuple[int | None, str]:
    uri = daemon.url.replace("http://", "ws://") + "/engine/v1/workers/worker_t/channel"
    token = worker_token(daemon.key, "worker_t")
    async with connect(uri, additional_headers={"Authorization": f"Bearer {token}"},
                       max_size=None, open_timeout=30, proxy=None) as ws:
        await ws.send(frame)
        try:
            extra = await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None,
                    closed.rcvd.reason if closed.rcvd else "")
        raise AssertionError(f"the daemon answered {extra!r} and kept the channel open")


async def _answer_of(daemon: DaemonProcess, frame: dict[str, Any]) -> Any:
    uri = daemon.url.replace("http://", "ws://") + "/engine/v1/workers/worker_t/channel"
    token = worker_token(daemon.key, "worker_t")
    async with connect(uri, additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=30, proxy=None) as ws:
        await ws.send(json.dumps(frame))
        return json.loads(await asyncio.wait_for(ws.recv(), 30))


def test_bad_frames_close_with_a_code_and_a_reason(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_PAYLOAD_LIMIT_BYTES": str(LIMIT)})
    d.start()
    try:
        refused = {
            "not json": ("{not json", "not valid JSON"),
            "not an object": ("[1, 2]", "not a JSON object"),
            "1e400": ('{"id": 1, "call": {"n": 1e400}}', "call.n"),
            "1e389 as e99": ('{"id": 1, "call": {"n": 1' + "0" * 290 + 'e99}}', "call.n"),
            "NaN hidden by its key": ('{"id": 1, "call": {"n": NaN, "n": 1}}', "call.n"),
            "many digits": ('{"id": 1, "x": ' + "9" * 5000 + "}", "digits"),
            "deep": ("[" * 5000 + "]" * 5000, "deep"),
            "lone surrogate": ('{"id": 1, "x": "\\ud800"}', "x"),
        }
        for name, (frame, says) in refused.items():
            code, reason = asyncio.run(_close_of(d, frame))
            assert code == 1007, (name, code, reason)
            assert says in reason, (name, reason)
        code, reason = asyncio.run(_close_of(d, json.dumps({"id": 1, "x": "a" * (2 * LIMIT)})))
        assert (code, "TRIGGER_LOCAL_PAYLOAD_LIMIT_BYTES" in reason) == (1009, True), reason
        # a frame under the limit is taken as before: an unknown kind gets its answer
        answer = asyncio.run(_answer_of(d, {"id": 7, "someNewKind": {}}))
        assert answer["id"] == 7, answer
        # the channel still serves the daemon's processes
        wait_for(lambda: d.api("GET", "/api/v1/local/status").status_code == 200, 30)
    finally:
        d.close()


def test_a_timer_due_with_attempt_true_is_refused(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hello", {"name": "x"})
    ready.wait_status(run_id, timeout=60)
    frame = {"id": 3, "timerDue": {"runId": run_id, "attempt": True,
                                   "runToken": run_token(ready.key, run_id, 1),
                                   "waitpointId": "waitpoint_x"}}
    answer = asyncio.run(_answer_of(ready, frame))
    assert answer["id"] == 3 and answer["status"] == 422, answer
    assert "timerDue must be" in answer["error"], answer
