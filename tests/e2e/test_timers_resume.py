"""Timers that resume waiting runs (issue #13, 1,000 concurrent timers), against a real daemon:
the waits due at one instant complete in one transaction that also puts their runs back to
EXECUTING in the shared processes holding them (engine/resuming.py), and each process hears
of all of its runs in one poll answer (executors/sharing.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for, write_project

TASKS = '''
import os
from datetime import datetime, timezone
from trigger_local import task, wait

@task(id="at-instant")
async def at_instant(payload, ctx):
    await wait.until(datetime.fromtimestamp(payload["at"], timezone.utc))
    return {"pid": os.getpid()}
'''
RUNS = 20
#: far enough ahead for the runs to start and wait first in a process that is up already, even
#: on a loaded machine (a run whose wait comes after the instant goes on at once: it is left
#: out of what is checked)
AHEAD_S = 6.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                 "TRIGGER_LOCAL_EVICT_AFTER_S": "0",
                                 # the daemon's timer is what this checks: the task processes
                                 # keep none (tests/e2e/test_process_timers.py: those that do)
                                 "TRIGGER_LOCAL_WORKER_TIMERS": "off"}).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        d.close()


def events(d: DaemonProcess, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = d.api("GET", "/api/v1/local/events",
                                        params={"run_id": run_id}).json()["data"]
    return found


@pytest.mark.timeout(240)
def test_waits_due_at_one_instant_resume_in_one_commit_and_one_answer_per_process(
        daemon: DaemonProcess) -> None:
    # a first run boots the shared process (its instant is past: it goes on at once)
    warm = daemon.trigger("at-instant", {"at": time.time()})
    assert daemon.wait_status(warm, timeout=120)["status"] == "COMPLETED"
    at = time.time() + AHEAD_S
    items = [{"task": "at-instant", "payload": f'{{"at": {at}}}',
              "options": {"payloadType": "application/json"}}] * RUNS
    r = daemon.api("POST", "/api/v1/tasks/batch", json={"items": items})
    assert r.status_code == 200, r.text
    run_ids = [run["id"] for run in r.json()["runs"]]

    def all_completed() -> bool:
        return all(daemon.run(run_id)["status"] == "COMPLETED" for run_id in run_ids)
    wait_for(all_completed, 180, interval=0.2, what=f"{RUNS} runs completed")

    waited: dict[str, list[dict[str, Any]]] = {}
    for run_id in run_ids:
        history = events(daemon, run_id)
        if any(e["type"] == "run.waiting" for e in history):
            waited[run_id] = history
    assert waited, f"no run waited before the instant {AHEAD_S} s ahead: the machine stalled"
    resumed_at = set()
    for run_id, history in waited.items():
        types = [e["type"] for e in history]
        after = types[types.index("run.waiting") + 1:]
        # straight back to EXECUTING where it waited: no queued_held step, no dispatcher round
        assert after == ["run.resumed", "run.completed"], (run_id, types)
        resumed = history[types.index("run.resumed")]
        assert "result" not in resumed["data"]
        resumed_at.add(resumed["at"])
    assert len(resumed_at) == 1, f"{len(waited)} runs resumed in {len(resumed_at)} transactions"
    pids = {daemon.run(run_id)["output"]["pid"] for run_id in waited}
    told = daemon.api("GET", "/api/v1/local/status").json()["executor"]["resumes"]
    assert told["messages"] == len(waited), told
    # each process that held some of them heard of all of its runs in one answer
    assert told["answers"] <= len(pids), (told, len(pids))
