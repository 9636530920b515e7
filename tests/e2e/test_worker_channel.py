"""A shared process's channel (docs/worker-protocol.md, "The channel") against a real daemon:
task processes use it, completions it acknowledged survive kill -9, and a process whose daemon
died finds the next daemon's channel."""

from __future__ import annotations

import asyncio
import json

from trigger_local.api.auth import run_token, worker_token
from trigger_local.runtime.channel import Channel

from .conftest import DaemonProcess, wait_for

RUNS = 5


def _channels(daemon: DaemonProcess) -> int:
    return int(daemon.api("GET", "/api/v1/local/status").json()["channels"])


def test_shared_runs_go_over_the_channel(ready: DaemonProcess) -> None:
    ids = [ready.trigger("hello", {"name": str(i)}) for i in range(20)]
    for run_id in ids:
        assert ready.wait_status(run_id, timeout=60)["status"] == "COMPLETED"
    # the process that ran them holds its channel open between runs
    assert _channels(ready) >= 1


def test_completions_acknowledged_on_a_channel_survive_kill_9(ready: DaemonProcess) -> None:
    # the task processes sleep; the test reports their attempts' ends itself over a channel of
    # its own, all in one frame, as a shared process does
    ids = [ready.trigger("sleeper", {"seconds": 120}) for _ in range(RUNS)]
    wait_for(lambda: all(ready.run(i)["status"] == "EXECUTING" for i in ids), 60,
             interval=0.1, what="every run to execute")
    items = [{"ok": True, "output": json.dumps({"by": run_id}), "outputType": "application/json",
              "runId": run_id, "attempt": 1, "runToken": run_token(ready.key, run_id, 1)}
             for run_id in ids]

    async def complete(url: str) -> list[dict[str, object]]:
        channel = await Channel.open(url, "worker_test", worker_token(ready.key, "worker_test"))
        assert channel is not None
        try:
            return await channel.complete(items)
        finally:
            await channel.close()

    assert asyncio.run(complete(ready.url)) == [{"status": "COMPLETED"}] * RUNS
    ready.kill9()  # at once: nothing after the answer may be needed to keep them
    ready.start()
    for run_id in ids:
        run = ready.run(run_id)
        assert (run["status"], run["output"]) == ("COMPLETED", {"by": run_id}), run
    # sent again (a process that never heard the answer): every one is gone, none done twice
    assert asyncio.run(complete(ready.url)) == [{"gone": True}] * RUNS


def test_a_process_finds_the_next_daemons_channel(ready: DaemonProcess) -> None:
    first = ready.trigger("hello", {"name": "before"})
    assert ready.wait_status(first, timeout=60)["status"] == "COMPLETED"
    ready.kill9()  # the warm process outlives its daemon, its channel broken
    ready.start(timeout=60)
    run_id = ready.trigger("hello", {"name": "after"})
    assert ready.wait_status(run_id, timeout=90)["status"] == "COMPLETED"
    wait_for(lambda: _channels(ready) >= 1, 60, interval=0.1,
             what="a task process on the new daemon's channel")
