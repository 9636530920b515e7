"""Our own routes: versions, tasks, status and the event long-poll."""

from __future__ import annotations

import asyncio

import httpx

from trigger_local.store.models import Version


async def test_index_a_version_then_read_it_back(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/local/versions/current")).status_code == 404
    assert (await api.get("/api/v1/local/tasks")).json() == {"data": [], "version": None}
    r = await api.post("/api/v1/local/versions", json={"projectDir": "/proj", "dirs": ["trigger"],
                                                       "env": {"A": "1"}})
    assert r.status_code == 200, r.text
    version = r.json()
    assert version["id"] == "version_1" and [t["id"] for t in version["tasks"]] \
        == ["hello", "child"]
    current = (await api.get("/api/v1/local/versions/current")).json()
    assert current["id"] == "version_1" and current["tasks"][0]["queue"] == "task/hello"
    tasks = (await api.get("/api/v1/local/tasks")).json()
    assert [t["id"] for t in tasks["data"]] == ["hello", "child"] \
        and tasks["version"] == "version_1"


async def test_indexing_failure_is_422_with_the_traceback(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/local/versions",
                       json={"projectDir": "/proj/broken", "dirs": ["trigger"]})
    assert r.status_code == 422
    assert r.json()["traceback"].startswith("Traceback") and r.json()["file"] == "trigger/broken.py"
    assert (await api.post("/api/v1/local/versions", json={"dirs": ["trigger"]})).status_code == 400
    r = await api.post("/api/v1/local/versions", json={"projectDir": "/p", "env": {"A": 1}})
    assert r.status_code == 400


async def test_status_includes_run_counts(api: httpx.AsyncClient, indexed: Version) -> None:
    await api.post("/api/v1/tasks/hello/trigger", json={})
    status = (await api.get("/api/v1/local/status")).json()
    assert status["executor"] == "in-process" and status["runs"] == {"QUEUED": 1}


async def test_events_after_a_seq_and_long_poll_woken_by_a_trigger(api: httpx.AsyncClient,
                                                                   indexed: Version) -> None:
    first = (await api.get("/api/v1/local/events")).json()
    assert first["data"][-1]["type"] == "version.registered"
    seq = first["next"]
    assert (await api.get("/api/v1/local/events", params={"after": str(seq)})).json() \
        == {"data": [], "next": seq}
    waiting = asyncio.create_task(api.get("/api/v1/local/events",
                                          params={"after": str(seq), "wait_s": "30"}))
    run_id = (await api.post("/api/v1/tasks/hello/trigger", json={})).json()["id"]
    body = (await asyncio.wait_for(waiting, 5)).json()
    assert body["data"][0]["runId"] == run_id and body["data"][0]["type"] == "run.created"
    assert body["next"] == body["data"][-1]["seq"] > seq
    only = (await api.get("/api/v1/local/events", params={"run_id": run_id})).json()
    assert {e["runId"] for e in only["data"]} == {run_id}
    assert (await api.get("/api/v1/local/events", params={"after": "-1"})).status_code == 400
