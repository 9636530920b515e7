"""Tasks that raise, exit, segfault or hang: each ends the way the user expects."""

from __future__ import annotations

from .conftest import DaemonProcess, wait_for


def _attempts(d: DaemonProcess, run_id: str) -> list[dict]:
    return d.api("GET", f"/api/v1/runs/{run_id}/trace").json()["attempts"]


def test_retries_with_backoff_until_success(ready: DaemonProcess) -> None:
    run_id = ready.trigger("flaky", {})
    run = ready.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"attempt": 3}
    attempts = _attempts(ready, run_id)
    assert [a["status"] for a in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    assert "failure number 1" in attempts[0]["error"]["message"]
    first = attempts[0]["error"]
    assert "RuntimeError" in first.get("stack", "") + first.get("name", "")


def test_abort_error_is_not_retried(ready: DaemonProcess) -> None:
    run_id = ready.trigger("aborter", {})
    run = ready.wait_status(run_id)
    assert run["status"] == "FAILED"
    assert run["error"]["message"] == "no point retrying"
    assert len(_attempts(ready, run_id)) == 1


def test_process_exit_crashes_the_attempt_and_is_retried(ready: DaemonProcess) -> None:
    run_id = ready.trigger("exiter", {})
    run = ready.wait_status(run_id)
    assert run["status"] == "CRASHED", run
    assert "exited with code 3" in run["error"]["message"]
    assert len(_attempts(ready, run_id)) == 2


def test_segfault_is_reported(ready: DaemonProcess) -> None:
    run = ready.wait_status(ready.trigger("segfaulter", {}))
    assert run["status"] == "CRASHED"
    assert "SIGSEGV" in run["error"]["message"]


def test_hanging_task_times_out_and_its_process_is_killed(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hanger", {})
    run = ready.wait_status(run_id, timeout=30)
    assert run["status"] == "TIMED_OUT", run
    assert "max_duration" in run["error"]["message"]
    status = ready.api("GET", "/api/v1/local/status").json()
    def busy() -> int:
        return int(ready.api("GET", "/api/v1/local/status").json()["executor"]["states"]
                   .get("busy", 0))

    wait_for(lambda: busy() == 0, 10, what="no busy process")
    assert status


def test_cancel_executing_run_kills_it(ready: DaemonProcess) -> None:
    run_id = ready.trigger("sleeper", {"seconds": 60})
    wait_for(lambda: ready.run(run_id)["status"] == "EXECUTING", 20, what="EXECUTING")
    r = ready.api("POST", f"/api/v2/runs/{run_id}/cancel")
    assert r.status_code == 200 and r.json()["id"] == run_id and not r.json()["alreadyFinal"]
    assert ready.run(run_id)["status"] == "CANCELED"
    # the slot is free again: a new run starts and finishes
    assert ready.wait_status(ready.trigger("hello", {}))["status"] == "COMPLETED"
