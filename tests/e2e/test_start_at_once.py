"""A trigger on an idle daemon starts its run in its own transaction on a warm shared process
(engine/starting.py, issue #13), against a real daemon: the runs run on the warm process, a
paused queue still holds a run that could start at once, and a task process killed -9 right
after a trigger's answer leaves no run stranded (its exit's worker-lost path retries it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonProcess, write_project

TASKS = '''
import asyncio, os
from trigger_local import task, Retry

@task(id="quick", retry=Retry(max_attempts=3, min_timeout_s=0.1, max_timeout_s=0.1, factor=1))
async def quick(payload, ctx):
    if ctx.attempt.number == 1:
        await asyncio.sleep(payload.get("sleep", 0))
    return {"pid": os.getpid(), "attempt": ctx.attempt.number}
'''


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off"}).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        d.close()


def output(d: DaemonProcess, run_id: str) -> dict[str, int]:
    run = d.wait_status(run_id, timeout=120)  # generous: CI runs this under load
    assert run["status"] == "COMPLETED", run
    result: dict[str, int] = run["output"]
    return result


def test_sequential_triggers_run_on_the_warm_shared_process(warm: DaemonProcess) -> None:
    pid = output(warm, warm.trigger("quick", {}))["pid"]  # the first run starts the process
    for _ in range(20):
        assert output(warm, warm.trigger("quick", {})) == {"pid": pid, "attempt": 1}


def test_a_paused_queue_holds_a_run_that_could_start_at_once(warm: DaemonProcess) -> None:
    output(warm, warm.trigger("quick", {}))  # a warm process with room
    pause = {"type": "task", "action": "pause"}
    warm.api("POST", "/api/v1/queues/quick/pause", json=pause).raise_for_status()
    run_id = warm.trigger("quick", {})
    assert warm.run(run_id)["status"] == "QUEUED"  # the trigger's transaction did not start it
    warm.api("POST", "/api/v1/queues/quick/pause",
             json={**pause, "action": "resume"}).raise_for_status()
    assert output(warm, run_id)["attempt"] == 1


def test_a_process_killed_right_after_the_trigger_strands_no_run(warm: DaemonProcess) -> None:
    pid = output(warm, warm.trigger("quick", {}))["pid"]
    run_id = warm.trigger("quick", {"sleep": 60})  # started at once on `pid`
    os.kill(pid, signal.SIGKILL)
    done = output(warm, run_id)  # retried on a new process, not left EXECUTING
    assert done["attempt"] == 2 and done["pid"] != pid
