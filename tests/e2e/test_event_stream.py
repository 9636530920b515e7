"""The server-sent event stream against a real daemon: statuses and log lines arrive, the
filters hold, and a client that reconnects with Last-Event-ID misses nothing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from trigger_local.sdk.client import SyncApiClient
from trigger_local.sdk.events import OPEN, SseParser, iter_events

from .conftest import DaemonProcess, wait_for


def read_stream(d: DaemonProcess, params: dict[str, str], until: Any,
                headers: dict[str, str] | None = None,
                timeout: float = 20) -> list[tuple[str, dict[str, Any], str | None]]:
    """Frames from the stream until `until(frames)` is true (or fail at the deadline)."""
    frames: list[tuple[str, dict[str, Any], str | None]] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=d.url, headers={"Authorization": f"Bearer {d.key}",
                                               **(headers or {})},
                      timeout=httpx.Timeout(5, read=timeout)) as http, \
            http.stream("GET", "/api/v1/local/stream", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        parser = SseParser()
        for line in response.iter_lines():
            parsed = parser.feed(line)
            if parsed is not None:
                frames.append((parsed[0], json.loads(parsed[1]), parsed[2]))
                if until(frames):
                    return frames
            assert time.monotonic() < deadline, f"stream did not deliver in time: {frames}"
    raise AssertionError(f"stream closed early: {frames}")


def test_stream_carries_statuses_and_log_lines_of_one_run(ready: DaemonProcess) -> None:
    run_id = ready.trigger("traced", {})
    ready.wait_status(run_id)
    frames = read_stream(ready, {"after": "0", "run_id": run_id},
                         lambda fs: any(f[0] == "run.completed" for f in fs))
    assert frames[0][0] == "hello"
    assert {f[1].get("runId") for f in frames[1:]} == {run_id}
    lines = [entry["message"] for f in frames if f[0] == "run.logs" for entry in f[1]["logs"]]
    assert "inside outer" in lines and "inside inner" in lines and "outer" in lines
    seqs = [int(f[2]) for f in frames[1:] if f[2]]
    assert seqs == sorted(seqs)
    without_logs = read_stream(ready, {"after": "0", "run_id": run_id, "exclude": "run.logs"},
                               lambda fs: any(f[0] == "run.completed" for f in fs))
    assert [f[0] for f in without_logs] == [f[0] for f in frames if f[0] != "run.logs"]


def test_resume_with_last_event_id_misses_nothing_and_filters_by_task(ready: DaemonProcess) -> None:
    first = ready.trigger("hello", {"name": "a"})
    ready.wait_status(first)
    frames = read_stream(ready, {"after": "0", "task": "hello"},
                         lambda fs: any(f[0] == "run.completed" for f in fs))
    cursor = frames[-1][2]
    assert cursor is not None
    other = ready.trigger("child", {"n": 1})  # another task: filtered out
    second = ready.trigger("hello", {"name": "b"}, tags=["blue"])
    ready.wait_status(other)
    ready.wait_status(second)
    later = read_stream(ready, {"task": "hello"},
                        lambda fs: any(f[0] == "run.completed" for f in fs),
                        headers={"Last-Event-ID": cursor})
    assert {f[1]["runId"] for f in later[1:]} == {second}
    assert [f[0] for f in later[1:]][0] == "run.created"
    tagged = read_stream(ready, {"after": "0", "tag": "blue"},
                         lambda fs: any(f[0] == "run.completed" for f in fs))
    assert {f[1]["runId"] for f in tagged[1:]} == {second}


def test_sdk_iterator_reconnects_after_a_daemon_restart(ready: DaemonProcess, project: Any) -> None:
    api = SyncApiClient(ready.url, ready.key)
    seen: list[dict[str, Any]] = []
    states: list[bool] = []

    def consume() -> None:
        for event in iter_events(api, types=["run."], on_state=states.append):
            seen.append(event)
            opened = len([e for e in seen if e["type"] == OPEN])
            if event.get("type") == "run.completed" and opened >= 2:
                return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    wait_for(lambda: states and states[-1], what="stream open")
    ready.stop()
    wait_for(lambda: states and states[-1] is False, what="disconnect noticed")
    ready.start()
    port_changed_api = SyncApiClient(ready.url, ready.key)
    api._fixed = port_changed_api._fixed  # the daemon came back on a new free port
    api._endpoint = None
    wait_for(lambda: len([e for e in seen if e["type"] == OPEN]) >= 2, 30, what="reconnected")
    run_id = ready.trigger("hello", {})
    thread.join(30)
    assert not thread.is_alive()
    assert any(e.get("runId") == run_id and e["type"] == "run.completed" for e in seen)
