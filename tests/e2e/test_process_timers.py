"""A shared process keeps its runs' short timers too (issue #13, 1,000 concurrent timers;
docs/waits.md, "Who keeps a wait's timer"), against a real daemon: a run whose process's timer
fires goes on at once — even while the daemon is stopped (SIGSTOP) — and the process tells the
daemon (a `timerDue` frame); its logs, metadata and completion are applied after its resume.
With `TRIGGER_LOCAL_WORKER_TIMERS=off` in the task process, the daemon's own timer (the
backstop) resumes the runs, as before."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for, write_project

TASKS = '''
import os
from pathlib import Path
from trigger_local import task, wait, logger, metadata

@task(id="nap")
async def nap(payload, ctx):
    await wait.for_(seconds=payload["s"])
    # written before the run sends anything: the wait returned in its process
    Path(payload["marks"], ctx.run.id).write_text("woke")
    logger.info("after the nap")
    metadata.set("woke", True)
    return {"pid": os.getpid()}

@task(id="warm")
async def warm(payload, ctx):
    return {}
'''
RUNS = 12
NAP_S = 12.0  # long enough for every run to start and wait before the first one is due, loaded


def _daemon(tmp_path: Path, timers: str) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                 "TRIGGER_LOCAL_WORKER_TIMERS": timers}).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.close()


@pytest.fixture
def on(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from _daemon(tmp_path, "on")


@pytest.fixture
def off(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from _daemon(tmp_path, "off")


def _status(d: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = d.api("GET", "/api/v1/local/status").json()
    return status


def _naps(d: DaemonProcess, marks: Path) -> list[str]:
    """RUNS runs, each waiting NAP_S in the shared process(es), once that process is up and on
    its channel; returns once every one waits."""
    assert d.wait_status(d.trigger("warm"), timeout=120)["status"] == "COMPLETED"
    wait_for(lambda: _status(d)["channels"] >= 1, 60, interval=0.1,
             what="a task process on its channel")
    marks.mkdir()
    items = [{"task": "nap", "payload": f'{{"s": {NAP_S}, "marks": "{marks}"}}',
              "options": {"payloadType": "application/json"}}] * RUNS
    r = d.api("POST", "/api/v1/tasks/batch", json={"items": items})
    assert r.status_code == 200, r.text
    run_ids = [run["id"] for run in r.json()["runs"]]
    wait_for(lambda: all(d.run(rid)["status"] == "WAITING" for rid in run_ids), 90,
             interval=0.1, what=f"{RUNS} runs waiting")
    return run_ids


def _history(d: DaemonProcess, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = d.api("GET", "/api/v1/local/events",
                                        params={"run_id": run_id}).json()["data"]
    return found


def _check_completed(d: DaemonProcess, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every run completed with what it sent after its wait; its history shows the wait, its
    resume in place and its completion. Returns the run.resumed events."""
    wait_for(lambda: all(d.run(rid)["status"] == "COMPLETED" for rid in run_ids), 120,
             interval=0.2, what=f"{RUNS} runs completed")
    resumed = []
    for run_id in run_ids:
        run = d.run(run_id)
        assert run["metadata"] == {"woke": True}, run
        wait_for(lambda rid=run_id: "after the nap" in d.log_messages(rid), 30, interval=0.1,
                 what="the log line sent after the wait")
        history = _history(d, run_id)
        types = [e["type"] for e in history]
        after = types[types.index("run.waiting") + 1:]
        # what it sent after its wait was applied after its resume, and before its end
        assert [t for t in after if t not in ("run.logs", "run.metadata")] == \
            ["run.resumed", "run.completed"], (run_id, types)
        assert after[0] == "run.resumed" and after[-1] == "run.completed", (run_id, types)
        resumed.append(history[types.index("run.resumed")])
    return resumed


@pytest.mark.timeout(300)
def test_runs_go_on_at_their_process_timer_while_the_daemon_is_stopped(
        on: DaemonProcess, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    run_ids = _naps(on, marks)
    assert on.proc is not None
    os.kill(on.proc.pid, signal.SIGSTOP)  # the daemon can neither fire a timer nor answer
    try:
        wait_for(lambda: len(list(marks.iterdir())) == RUNS, 90, interval=0.1,
                 what=f"{RUNS} waits returned in their process while the daemon was stopped")
    finally:
        os.kill(on.proc.pid, signal.SIGCONT)
    resumed = _check_completed(on, run_ids)
    assert all(e["data"]["from"] == "WAITING" for e in resumed), resumed
    frames = _status(on)["channelFrames"]
    assert int(frames.get("timerDue", 0)) == RUNS, frames  # every process told the daemon
    pids = {on.run(rid)["output"]["pid"] for rid in run_ids}
    assert len(pids) < RUNS  # many runs per shared process


@pytest.mark.timeout(300)
def test_the_daemons_timer_resumes_runs_whose_process_keeps_no_timer(
        off: DaemonProcess, tmp_path: Path) -> None:
    run_ids = _naps(off, tmp_path / "marks")
    resumed = _check_completed(off, run_ids)
    assert all("resumed_by" not in e["data"] for e in resumed), resumed
    status = _status(off)
    assert "timerDue" not in status["channelFrames"], status["channelFrames"]
    # the daemon told each run's process, with the wait's result
    assert status["executor"]["resumes"]["messages"] >= RUNS, status["executor"]
