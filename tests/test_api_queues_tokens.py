"""Queues (list, retrieve by id/task/custom, pause, concurrency override) and waitpoint tokens."""

from __future__ import annotations

import json

import httpx

from tests.conftest import SECRET
from trigger_local.api.auth import callback_hash
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine
from trigger_local.store.models import Version


async def test_queue_list_pages_and_retrieve_by_every_address(api: httpx.AsyncClient,
                                                              indexed: Version) -> None:
    await api.post("/api/v1/tasks/hello/trigger", json={"options": {"queue": {"name": "my/queue"}}})
    page = (await api.get("/api/v1/queues", params={"page": "1", "perPage": "2"})).json()
    assert page["pagination"] == {"currentPage": 1, "totalPages": 2, "count": 3}
    names = [q["name"] for q in page["data"]] + [q["name"] for q in (await api.get(
        "/api/v1/queues", params={"page": "2", "perPage": "2"})).json()["data"]]
    assert sorted(names) == ["child", "hello", "my/queue"]
    task_queue = (await api.get("/api/v1/queues/hello", params={"type": "task"})).json()
    assert task_queue["type"] == "task" and task_queue["queued"] == 0 \
        and task_queue["paused"] is False
    assert task_queue["concurrencyLimit"] is None
    by_id = (await api.get(f"/api/v1/queues/{task_queue['id']}", params={"type": "id"})).json()
    assert by_id["name"] == "hello"
    custom = await api.get("/api/v1/queues/my%252Fqueue", params={"type": "custom"})
    assert custom.status_code == 200 and custom.json()["name"] == "my/queue" \
        and custom.json()["type"] == "custom"
    assert custom.json()["queued"] == 1
    missing = await api.get("/api/v1/queues/nope", params={"type": "custom"})
    assert missing.status_code == 404 and missing.json()["error"] == "queue-not-found"


async def test_an_empty_or_blank_queue_name_is_a_400_on_every_queue_route(
        api: httpx.AsyncClient, engine: Engine, indexed: Version) -> None:
    """A blank name answered 404 queue-not-found (and a queue named " " could be made and then
    paused by it); it is a 400 saying a name is required, as an empty one is."""
    for seg in ("", "%20", "%09", "%20%20", "%E3%80%80"):
        for method, path, body in (
                ("GET", f"/api/v1/queues/{seg}", None),
                ("POST", f"/api/v1/queues/{seg}/pause", {"type": "custom", "action": "pause"}),
                ("POST", f"/api/v1/queues/{seg}/pause", {"action": "resume"}),
                ("POST", f"/api/v1/queues/{seg}/concurrency/override",
                 {"type": "task", "concurrencyLimit": 1}),
                ("POST", f"/api/v1/queues/{seg}/concurrency/reset", {})):
            r = await api.request(method, path, json=body)
            assert r.status_code == 400 and r.json()["error"].startswith(
                "A queue name (a task id, a custom queue's name or a queue_… id) is required"), \
                (path, r.text)
    for seg in ("ü%E2%9C%93", "x" * 5000):  # not blank: looked up, and not found
        r = await api.post(f"/api/v1/queues/{seg}/pause", json={"type": "custom"})
        assert r.status_code == 404 and r.json()["error"] == "queue-not-found", r.text
    assert not any(q.paused for q in await engine.queries.queues.all(None))


async def test_pause_resume_and_concurrency_override(api: httpx.AsyncClient, engine: Engine,
                                                     indexed: Version) -> None:
    await api.post("/api/v1/tasks/hello/trigger", json={})
    paused = await api.post("/api/v1/queues/hello/pause", json={"type": "task", "action": "pause"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert await engine.dequeue(5) == []
    resumed = await api.post("/api/v1/queues/hello/pause",
                             json={"type": "task", "action": "resume"})
    assert resumed.json()["paused"] is False
    bad = await api.post("/api/v1/queues/hello/pause", json={"type": "task", "action": "stop"})
    assert bad.status_code == 400
    over = (await api.post("/api/v1/queues/hello/concurrency/override",
                           json={"type": "task", "concurrencyLimit": 2})).json()
    assert over["concurrencyLimit"] == 2 and over["concurrency"]["override"] == 2
    assert over["concurrency"]["base"] is None
    reset = (await api.post("/api/v1/queues/hello/concurrency/reset", json={"type": "task"})).json()
    assert reset["concurrencyLimit"] is None and reset["concurrency"]["override"] is None
    assert (await api.post("/api/v1/queues/hello/concurrency/override",
                           json={"type": "task", "concurrencyLimit": -1})).status_code == 400


async def test_token_create_complete_retrieve(api: httpx.AsyncClient, engine: Engine) -> None:
    r = await api.post("/api/v1/waitpoints/tokens", json={"timeout": "1h", "tags": ["user:1"],
                                                          "idempotencyKey": "tok-key"})
    assert r.status_code == 200 and r.json()["isCached"] is False
    token = r.json()
    assert token["url"] == (f"http://127.0.0.1:8030/api/v1/waitpoints/tokens/{token['id']}/callback/"
                            f"{callback_hash(SECRET, token['id'])}")
    again = (await api.post("/api/v1/waitpoints/tokens", json={"idempotencyKey": "tok-key"})).json()
    assert again["id"] == token["id"] and again["isCached"] is True
    waiting = (await api.get(f"/api/v1/waitpoints/tokens/{token['id']}")).json()
    assert waiting["status"] == "WAITING" and waiting["tags"] == ["user:1"] \
        and "output" not in waiting
    assert waiting["timeoutAt"] == waiting["completedAfter"]
    as_public = {"Authorization": f"Bearer {r.headers['x-trigger-jwt']}"}
    done = await api.post(f"/api/v1/waitpoints/tokens/{token['id']}/complete",
                          json={"data": {"ok": True}},
                          headers=as_public)
    assert done.json() == {"success": True, "changed": True}  # changed: ours
    completed = (await api.get(f"/api/v1/waitpoints/tokens/{token['id']}")).json()
    assert completed["status"] == "COMPLETED" \
        and completed["outputType"] == "application/super+json"
    assert json.loads(completed["output"]) == {"json": {"ok": True}} \
        and completed["outputIsError"] is False
    r = await api.post(f"/api/v1/waitpoints/tokens/{token['id']}/complete", json={"data": 1})
    assert r.status_code == 200
    r = await api.post("/api/v1/waitpoints/tokens/waitpoint_nope/complete", json={})
    assert r.status_code == 404
    assert (await api.get("/api/v1/waitpoints/tokens/waitpoint_nope")).status_code == 404


async def test_callback_url_checks_its_hmac_and_takes_the_whole_body(
        api: httpx.AsyncClient) -> None:
    token = (await api.post("/api/v1/waitpoints/tokens", json={})).json()
    path = token["url"].removeprefix("http://127.0.0.1:8030")
    no_auth = {"Authorization": ""}
    wrong = await api.post(path[:-4] + "0000", json={"a": 1}, headers=no_auth)
    assert wrong.status_code == 401 and wrong.json()["error"] == "Invalid URL, hash doesn't match"
    good = await api.post(path, json={"approved": True}, headers=no_auth)
    assert good.json() == {"success": True}
    out = (await api.get(f"/api/v1/waitpoints/tokens/{token['id']}")).json()
    assert json.loads(out["output"]) == {"json": {"approved": True}}
    garbage = (await api.post("/api/v1/waitpoints/tokens", json={})).json()
    await api.post(garbage["url"].removeprefix("http://127.0.0.1:8030"), content=b"not json",
                   headers=no_auth)
    stored = (await api.get(f"/api/v1/waitpoints/tokens/{garbage['id']}")).json()
    assert json.loads(stored["output"]) == {"json": {}}


async def test_forced_and_natural_timeouts(api: httpx.AsyncClient, engine: Engine,
                                           clock: FakeClock) -> None:
    forced = (await api.post("/api/v1/waitpoints/tokens", json={})).json()
    r = await api.post(f"/api/v1/waitpoints/tokens/{forced['id']}/timeout")
    assert r.status_code == 200 and r.json()["status"] == "TIMED_OUT" \
        and r.json()["outputIsError"] is True and r.json()["changed"] is True
    natural = (await api.post("/api/v1/waitpoints/tokens", json={"timeout": "10m"})).json()
    clock.advance(601)
    await engine.tick_timers()
    out = (await api.get(f"/api/v1/waitpoints/tokens/{natural['id']}")).json()
    assert out["status"] == "TIMED_OUT" and out["outputType"] == "application/json"
    assert json.loads(out["output"]) == {"code": "TRIGGER_WAITPOINT_TIMEOUT",
                                         "message": f"Waitpoint timed out at {out['timeoutAt']}"}


async def test_list_tokens_filters_and_cursor(api: httpx.AsyncClient, clock: FakeClock) -> None:
    ids = []
    for i in range(5):
        made = await api.post("/api/v1/waitpoints/tokens", json={"tags": [f"n:{i % 2}"]})
        ids.append(made.json()["id"])
        clock.advance(1)
    await api.post(f"/api/v1/waitpoints/tokens/{ids[0]}/complete", json={"data": "x"})
    first = (await api.get("/api/v1/waitpoints/tokens", params={"page[size]": "3"})).json()
    assert [t["id"] for t in first["data"]] == ids[:1:-1]
    rest = (await api.get("/api/v1/waitpoints/tokens",
                          params={"page[size]": "3",
                                  "page[after]": first["pagination"]["next"]})).json()
    assert [t["id"] for t in rest["data"]] == [ids[1], ids[0]] and "next" not in rest["pagination"]
    done = (await api.get("/api/v1/waitpoints/tokens",
                          params={"filter[status]": "COMPLETED"})).json()
    assert [t["id"] for t in done["data"]] == [ids[0]]
    tagged = (await api.get("/api/v1/waitpoints/tokens", params={"filter[tags]": "n:1"})).json()
    assert {t["id"] for t in tagged["data"]} == {ids[1], ids[3]}
    recent = (await api.get("/api/v1/waitpoints/tokens",
                            params={"filter[createdAt][period]": "2s"})).json()
    assert {t["id"] for t in recent["data"]} == {ids[3], ids[4]}
    r = await api.get("/api/v1/waitpoints/tokens", params={"filter[status]": "DONE"})
    assert r.status_code == 400
