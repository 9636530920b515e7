"""The async event stream (sdk/events.py `stream_events`, which the dashboard follows) finds a
daemon started again from the same home on another port, through the home's daemon.json, as
the blocking one (`iter_events`, the CLI's) does: it used to knock on the old port for ever,
and the dashboard said "reconnecting" to a daemon that was up. A real daemon, killed and
started again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pg_cluster import free_port

from trigger_local.sdk.client import ApiClient
from trigger_local.sdk.events import OPEN, stream_events

from .conftest import DaemonProcess


async def _until(predicate: Any, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_async_stream_follows_the_daemon_to_another_port(
        ready: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(ready.home))
    for name in ("TRIGGER_API_URL", "TRIGGER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    api = ApiClient()  # the dashboard's: the daemon found in the home
    seen: list[dict[str, Any]] = []
    states: list[bool] = []

    async def consume() -> None:
        async for event in stream_events(api, types=["run."], on_state=states.append):
            seen.append(event)

    follower = asyncio.create_task(consume())
    try:
        await _until(lambda: states and states[-1], 20, "the stream to open")
        old_url = ready.url
        await asyncio.to_thread(ready.kill9)
        await _until(lambda: states and states[-1] is False, 20, "the stream to be lost")
        ready.port = free_port()
        await asyncio.to_thread(ready.start)
        assert ready.url != old_url
        await _until(lambda: sum(e["type"] == OPEN for e in seen) >= 2, 30,
                     "the stream to open again at the new port")
        assert api.endpoint.base_url == ready.url  # the client's other calls go there too
        assert (await api.status())["pid"] == ready.proc.pid  # type: ignore[union-attr]
        run_id = await asyncio.to_thread(ready.trigger, "hello", {})
        await _until(lambda: any(e.get("runId") == run_id and e["type"] == "run.completed"
                                 for e in seen), 30, "the run's events")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await api.aclose()
