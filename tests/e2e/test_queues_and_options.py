"""Queues, concurrency, pause/resume and trigger options through a real daemon."""

from __future__ import annotations

import json
import time

from .conftest import DaemonProcess


def test_queue_concurrency_limit_one_never_overlaps(ready: DaemonProcess) -> None:
    ids = [ready.trigger("serial", {}) for _ in range(3)]
    outputs = sorted((ready.wait_status(i)["output"] for i in ids), key=lambda o: o["start"])
    for a, b in zip(outputs, outputs[1:], strict=False):
        assert b["start"] >= a["end"] - 0.01, outputs


def test_paused_queue_starts_nothing_until_resumed(ready: DaemonProcess) -> None:
    r = ready.api("POST", "/api/v1/queues/hello/pause", json={"type": "task", "action": "pause"})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True
    run_id = ready.trigger("hello", {})
    time.sleep(0.5)  # a paused queue must not start it: give the dispatcher a chance to be wrong
    assert ready.run(run_id)["status"] == "QUEUED"
    r = ready.api("POST", "/api/v1/queues/hello/pause", json={"type": "task", "action": "resume"})
    assert r.json()["paused"] is False
    assert ready.wait_status(run_id)["status"] == "COMPLETED"


def test_delayed_run_starts_later(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hello", {}, delay="1s")
    run = ready.run(run_id)
    assert run["status"] == "DELAYED"
    assert "delayedUntil" in run
    done = ready.wait_status(run_id)
    assert done["status"] == "COMPLETED"


def test_ttl_expires_a_run_that_cannot_start(ready: DaemonProcess) -> None:
    ready.api("POST", "/api/v1/queues/hello/pause", json={"type": "task", "action": "pause"})
    run_id = ready.trigger("hello", {}, ttl="1s")
    run = ready.wait_status(run_id, timeout=15)
    assert run["status"] == "EXPIRED"


def test_idempotency_key_returns_the_same_run(ready: DaemonProcess) -> None:
    body = {"payload": json.dumps({}), "options": {"idempotencyKey": "k1",
                                                   "payloadType": "application/json"}}
    first = ready.api("POST", "/api/v1/tasks/hello/trigger", json=body).json()
    second = ready.api("POST", "/api/v1/tasks/hello/trigger", json=body).json()
    assert first["id"] == second["id"]
    assert first["isCached"] is False and second["isCached"] is True


def test_priority_jumps_the_queue(ready: DaemonProcess) -> None:
    ready.api("POST", "/api/v1/queues/hello/pause", json={"type": "task", "action": "pause"})
    low = ready.trigger("hello", {"name": "low"})
    high = ready.trigger("hello", {"name": "high"}, priority=60)
    ready.api("POST", "/api/v1/queues/hello/pause", json={"type": "task", "action": "resume"})
    a, b = ready.wait_status(low), ready.wait_status(high)
    assert b["startedAt"] <= a["startedAt"]


def test_cancel_replay_and_reschedule(ready: DaemonProcess) -> None:
    delayed = ready.trigger("hello", {"name": "later"}, delay="1h")
    r = ready.api("POST", f"/api/v1/runs/{delayed}/reschedule", json={"delay": "2h"})
    assert r.status_code == 200 and r.json()["status"] == "DELAYED"
    assert ready.api("POST", f"/api/v2/runs/{delayed}/cancel").status_code == 200
    assert ready.run(delayed)["status"] == "CANCELED"
    replay = ready.api("POST", f"/api/v1/runs/{delayed}/replay").json()["id"]
    assert replay != delayed
    assert ready.wait_status(replay)["output"]["message"] == "Hello, later!"


def test_bad_input_gets_clear_errors(ready: DaemonProcess) -> None:
    cases = [
        ({"payload": "{", "options": {"payloadType": "application/json"}}, None, (400, 422)),
        ({"options": {"delay": "10x"}}, "10x", (422,)),
        ({"options": {"tags": [f"t{i}" for i in range(11)]}}, "10 tags", (422,)),
        ({"options": {"priority": -5}}, "priority", (422,)),
    ]
    for body, needle, statuses in cases:
        r = ready.api("POST", "/api/v1/tasks/hello/trigger", json=body)
        if needle is None:
            assert r.status_code == 400, r.text
            assert "JSON" in r.json()["error"]
            continue
        assert r.status_code in statuses, (body, r.text)
        assert needle in r.json()["error"], r.text
    r = ready.api("POST", "/api/v1/tasks/hello/trigger", content=b"{not json",
                  headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = ready.api("POST", "/api/v1/tasks/no-such-task/trigger", json={})
    assert r.status_code == 404
    assert "hello" in r.json()["error"]
    big = "x" * (3 * 1024 * 1024 + 10)
    r = ready.api("POST", "/api/v1/tasks/hello/trigger", json={"payload": json.dumps(big)})
    assert r.status_code == 413
    assert "MiB" in r.json()["error"] or "bytes" in r.json()["error"]
    r = ready.client.get("/api/v1/runs",
                         headers={"Authorization": "Bearer tr_dev_wrong"})  # type: ignore[union-attr]
    assert r.status_code == 401
