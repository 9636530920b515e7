"""A run goes from trigger to output through a real daemon and a real task process."""

from __future__ import annotations

import json

from .conftest import DaemonProcess, wait_for


def test_trigger_runs_task_and_returns_output(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hello", {"name": "Ada"})
    run = ready.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["message"] == "Hello, Ada!"
    assert run["isSuccess"] and run["isCompleted"] and not run["isFailed"]
    assert run["attemptCount"] == 1


def test_sync_task_function_runs(ready: DaemonProcess) -> None:
    run = ready.wait_status(ready.trigger("sync-hello", {"a": 2, "b": 3}))
    assert run["status"] == "COMPLETED"
    assert run["output"] == {"sum": 5}


def test_warm_process_takes_the_next_run(ready: DaemonProcess) -> None:
    first = ready.wait_status(ready.trigger("hello", {"name": "a"}))
    second = ready.wait_status(ready.trigger("hello", {"name": "b"}))
    assert first["output"]["pid"] == second["output"]["pid"]


def test_logs_spans_and_metadata_are_recorded(ready: DaemonProcess) -> None:
    run_id = ready.trigger("traced", {})
    run = ready.wait_status(run_id)
    assert run["status"] == "COMPLETED"
    assert run["metadata"] == {"progress": 0.5, "count": 2, "items": ["a"]}
    logs = ready.api("GET", f"/api/v1/runs/{run_id}/logs").json()["data"]
    messages = {e["message"] for e in logs}
    assert {"inside outer", "inside inner"} <= messages
    spans = {e["message"]: e for e in logs if e["kind"] == "span"}
    assert spans["inner"]["parentSpanId"] == spans["outer"]["spanId"]
    inner_log = next(e for e in logs if e["message"] == "inside inner")
    assert inner_log["level"] in ("warn", "warning", "WARN")
    assert inner_log["attributes"]["level_two"] is True


def test_schema_task_refuses_invalid_payload_without_creating_a_run(ready: DaemonProcess) -> None:
    before = ready.api("GET", "/api/v1/runs",
                       params={"filter[taskIdentifier]": "resize"}).json()["data"]
    r = ready.api("POST", "/api/v1/tasks/resize/trigger",
                  json={"payload": json.dumps({"width": "wide", "height": 2}),
                        "options": {"payloadType": "application/json"}})
    assert r.status_code == 422, r.text
    assert "width" in r.json()["error"]
    after = ready.api("GET", "/api/v1/runs",
                      params={"filter[taskIdentifier]": "resize"}).json()["data"]
    assert len(after) == len(before)
    ok = ready.wait_status(ready.trigger("resize", {"width": 3, "height": 4}))
    assert ok["output"] == {"area": 12}


def test_child_trigger_and_wait_returns_child_output(ready: DaemonProcess) -> None:
    run = ready.wait_status(ready.trigger("parent", {"n": 21}))
    assert run["status"] == "COMPLETED", run
    assert run["output"]["child"] == {"doubled": 42}
    child = ready.run(run["output"]["child_id"])
    assert child["status"] == "COMPLETED"
    assert child["depth"] == 1


def test_batch_trigger_and_wait(ready: DaemonProcess) -> None:
    run = ready.wait_status(ready.trigger("batch-parent", {"count": 5}), timeout=60)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["values"] == [0, 2, 4, 6, 8]


def test_held_wait_resumes_after_duration(ready: DaemonProcess) -> None:
    run_id = ready.trigger("waiter", {"seconds": 1})
    wait_for(lambda: ready.run(run_id)["status"] == "WAITING", 20, what="WAITING")
    run = ready.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert 0.9 <= run["output"]["waited"] < 5


def test_token_wait_completes_with_data(ready: DaemonProcess) -> None:
    run_id = ready.trigger("token-waiter", {})
    token = wait_for(lambda: ready.run(run_id).get("metadata", {}).get("token"), 20,
                     what="token id")
    wait_for(lambda: ready.run(run_id)["status"] == "WAITING", 20, what="WAITING")
    r = ready.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                  json={"data": {"approved": True}})
    assert r.status_code == 200, r.text
    run = ready.wait_status(run_id)
    assert run["output"] == {"ok": True, "output": {"approved": True}}
