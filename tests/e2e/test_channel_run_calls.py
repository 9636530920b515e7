"""A shared process's run calls — logs, metadata, a child trigger, a step — travel on its channel
when it is open (docs/worker-protocol.md, "The channel"), and over their HTTP routes with the
channel off; a burst of log lines is a few frames, not one per line. Against a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for, write_project

TASKS = '''
from trigger_local import task, logger, metadata, step

def twice(n):
    return n * 2

@task(id="kid")
async def kid(payload, ctx):
    return {"n": payload["n"]}

@task(id="chatty")
async def chatty(payload, ctx):
    for n in range(payload["lines"]):
        logger.info(f"line {n}")
    metadata.set("progress", 1)
    child = await kid.trigger({"n": 7})
    doubled = await step.run("double", twice, 21)
    return {"child": child.id, "doubled": doubled}

@task(id="warm")
async def warm(payload, ctx):
    return {}
'''
CALLS = ("call:logs", "call:metadata", "call:trigger", "call:steps")


def _status(d: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = d.api("GET", "/api/v1/local/status").json()
    return status


def _frames(d: DaemonProcess) -> dict[str, int]:
    return {k: int(v) for k, v in _status(d)["channelFrames"].items()}


def _daemon(tmp_path: Path, channel: str) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_WORKER_CHANNEL": channel})
    d.start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        d.close()


@pytest.fixture
def on(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from _daemon(tmp_path, "on")


@pytest.fixture
def off(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from _daemon(tmp_path, "off")


def _run_chatty(d: DaemonProcess, lines: int) -> str:
    run_id = d.trigger("chatty", {"lines": lines})
    run = d.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["doubled"] == 42
    assert run["metadata"] == {"progress": 1}
    child = d.wait_status(run["output"]["child"], timeout=90)
    assert (child["status"], child["output"]) == ("COMPLETED", {"n": 7})
    wait_for(lambda: sum(m.startswith("line ") for m in d.log_messages(run_id)) == lines, 30,
             interval=0.1, what="every log line stored")
    return run_id


def _warm_on_the_channel(d: DaemonProcess) -> None:
    # a shared process opens its channel once it knows it is shared (its first answer carried
    # messages): the run after that makes all its calls there
    assert d.wait_status(d.trigger("warm"), timeout=90)["status"] == "COMPLETED"
    wait_for(lambda: _status(d)["channels"] >= 1, 60, interval=0.1,
             what="a task process on its channel")


def test_logs_metadata_a_child_and_a_step_go_over_the_channel(on: DaemonProcess) -> None:
    _warm_on_the_channel(on)
    before = _frames(on)
    _run_chatty(on, 3)
    after = _frames(on)
    grew = {name: after.get(name, 0) - before.get(name, 0) for name in CALLS}
    assert all(n >= 1 for n in grew.values()), grew


def test_with_the_channel_off_they_go_over_http(off: DaemonProcess) -> None:
    assert off.wait_status(off.trigger("warm"), timeout=90)["status"] == "COMPLETED"
    _run_chatty(off, 3)  # everything arrived, so it came over HTTP
    assert _status(off)["channels"] == 0
    assert _frames(off) == {}


def test_a_burst_of_log_lines_is_a_few_frames(on: DaemonProcess) -> None:
    _warm_on_the_channel(on)
    before = _frames(on).get("call:logs", 0)
    _run_chatty(on, 500)
    sent = _frames(on).get("call:logs", 0) - before
    # sent in bursts (at most 0.2 s apart, or 100 lines at once), never one per line
    assert 1 <= sent <= 25, sent
