"""kill -9 of the daemon at any moment loses no run; SIGTERM stops it in order."""

from __future__ import annotations

import random
import time

import pytest

from .conftest import TERMINAL, DaemonProcess, wait_for

pytestmark = pytest.mark.slow


def _all_final(d: DaemonProcess, ids: list[str]) -> bool:
    return all(d.run(i)["status"] in TERMINAL for i in ids)


def test_kill_9_mid_load_loses_no_run(ready: DaemonProcess) -> None:
    rng = random.Random(7)
    ids: list[str] = []
    for round_ in range(3):
        for i in range(15):
            task = rng.choice(["hello", "sleeper", "waiter", "parent"])
            payload = {"hello": {"name": f"r{round_}-{i}"},
                       "sleeper": {"seconds": rng.choice([0.1, 0.5, 1.5])},
                       "waiter": {"seconds": rng.choice([0.2, 1.0])}, "parent": {"n": i}}[task]
            ids.append(ready.trigger(task, payload))
        time.sleep(rng.uniform(0.2, 0.8))  # let the load get going, then pull the plug
        ready.kill9()
        ready.start()
    wait_for(lambda: _all_final(ready, ids), 120, interval=0.2, what="every run to finish")
    statuses = {i: ready.run(i)["status"] for i in ids}
    assert set(statuses.values()) == {"COMPLETED"}, {k: v for k, v in statuses.items()
                                                     if v != "COMPLETED"}


def _started(d: DaemonProcess, run_id: str) -> bool:
    """The task function is running (its first log line arrived), not just assigned."""
    return bool(d.api("GET", f"/api/v1/runs/{run_id}/logs").json()["data"])


def test_executing_run_survives_daemon_kill_and_is_reattached(ready: DaemonProcess) -> None:
    run_id = ready.trigger("sleeper", {"seconds": 2})
    wait_for(lambda: _started(ready, run_id), 20, what="the task to start")
    ready.kill9()
    ready.start()
    run = ready.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED"
    assert run["attemptCount"] == 1  # the same process finished it: re-attached, not retried


def test_sigterm_interrupts_and_next_daemon_finishes(ready: DaemonProcess) -> None:
    run_id = ready.trigger("sleeper", {"seconds": 30})
    wait_for(lambda: _started(ready, run_id), 20, what="the task to start")
    assert ready.stop() == 0
    ready.start()
    # the interrupted attempt does not count; the run starts again and is still running or done
    run = ready.run(run_id)
    assert run["status"] in ("QUEUED", "DEQUEUED", "EXECUTING"), run
    trace = ready.api("GET", f"/api/v1/runs/{run_id}/trace").json()
    assert trace["attempts"][0]["rawStatus"] == "INTERRUPTED", trace["attempts"]
    ready.api("POST", f"/api/v2/runs/{run_id}/cancel")
