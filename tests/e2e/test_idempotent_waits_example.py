"""Runs examples/idempotent_waits (the example docs/waits.md points to) against a real daemon:
a retried attempt gets the same, already-completed token and skips the keyed wait."""

from __future__ import annotations

from pathlib import Path

from .conftest import DaemonProcess, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "idempotent_waits"


def test_retried_attempt_reuses_keyed_token_and_wait(daemon: DaemonProcess) -> None:
    daemon.register(EXAMPLE)
    run_id = daemon.trigger("idempotent-approval", {"cool_down_s": 1})
    key = f"approval-{run_id}"

    def token() -> dict | None:
        page = daemon.api("GET", "/api/v1/waitpoints/tokens",
                          params={"filter[idempotencyKey]": key}).json()
        return page["data"][0] if page["data"] else None

    found = wait_for(token, 30, what="the approval token")
    daemon.wait_status(run_id, "WAITING")
    r = daemon.api("POST", f"/api/v1/waitpoints/tokens/{found['id']}/complete",
                   json={"data": {"approved": True}})
    assert r.json() == {"success": True, "changed": True}
    run = daemon.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    out = run["output"]
    assert (out["attempt"] == 2 and out["token"] == found["id"]
            and out["decision"] == {"approved": True})
    assert out["waited_s"] < 0.5  # attempt 1 waited ~1 s; attempt 2 found the keyed wait done
    tokens = daemon.api("GET", "/api/v1/waitpoints/tokens",
                        params={"filter[tags]": "approval"}).json()["data"]
    assert [t["id"] for t in tokens] == [found["id"]]  # the human was asked once
