"""Environment variables reach task processes started afterwards; offloaded payloads
(`/api/v2/packets` + presigned URL + `application/store`) reach the task as the real payload."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from .conftest import DaemonProcess, write_project

ENV_TASKS = '''
import os
from trigger_local import task

@task(id="show-env")
async def show_env(payload, ctx):
    return {"value": os.environ.get(payload["name"]), "size": len(payload.get("blob", ""))}
'''
BASE = "/api/v1/projects/proj_test/envvars/dev"


def test_env_vars_are_injected_into_new_task_processes(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    # a ref no project has is 404 (api/envvars.py): the project is registered first
    assert daemon.api("POST", BASE, json={"name": "GREETING", "value": "hej"}).status_code == 404
    daemon.register(write_project(tmp_path / "envproj", ENV_TASKS))
    assert daemon.api("POST", BASE,
                      json={"name": "GREETING", "value": "hej"}).json() == {"success": True}
    r = daemon.api("POST", f"{BASE}/import", json={"variables": {"API_TOKEN": "s3cret"},
                                                   "isSecret": True})
    assert r.json() == {"success": True}
    assert daemon.api("GET", BASE).json() == [{"name": "API_TOKEN", "value": "<redacted>",
                                               "isSecret": True},
                                              {"name": "GREETING", "value": "hej",
                                               "isSecret": False}]
    assert daemon.api("GET", f"{BASE}/NOPE").status_code == 404
    assert daemon.api("GET", "/api/v1/projects/proj_test/envvars/nowhere").status_code == 400
    assert daemon.api("POST", BASE, json={"name": "TRIGGER_SECRET_KEY",
                                          "value": "x"}).status_code == 400
    for name, want in (("GREETING", "hej"), ("API_TOKEN", "s3cret")):
        run = daemon.wait_status(daemon.trigger("show-env", {"name": name}))
        assert run["output"]["value"] == want, run
    assert daemon.api("DELETE", f"{BASE}/GREETING").json() == {"success": True}
    assert [v["name"] for v in daemon.api("GET", BASE).json()] == ["API_TOKEN"]


def test_offloaded_payload_round_trip(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.register(write_project(tmp_path / "pktproj", ENV_TASKS))
    packet = json.dumps({"json": {"name": "HOME", "blob": "x" * 200_000}})
    answer = daemon.api("PUT", "/api/v2/packets/trigger%2Fpacket_abc%2Fpayload.json").json()
    assert answer["storagePath"] == "trigger/packet_abc/payload.json"
    forged = httpx.put(answer["presignedUrl"].replace("sig=", "sig=0"), content=packet)
    assert forged.status_code == 401
    put = httpx.put(answer["presignedUrl"], content=packet,
                    headers={"content-type": "application/super+json"})
    assert put.status_code == 200
    r = daemon.api("POST", "/api/v1/tasks/show-env/trigger", json={
        "payload": answer["storagePath"],
        "options": {"payloadType": "application/store", "payloadSize": len(packet)}})
    run = daemon.wait_status(r.json()["id"])
    assert run["status"] == "COMPLETED" and run["output"]["size"] == 200_000, run
    assert "payload" not in run
    fetched = httpx.get(run["payloadPresignedUrl"])
    assert (fetched.headers["content-type"].startswith("application/super+json")
            and fetched.text == packet)
    assert daemon.api("PUT", "/api/v2/packets/..%2Fescape").status_code == 400
