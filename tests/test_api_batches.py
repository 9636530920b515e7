"""Batch triggering: the SDK's two-phase v3 API with NDJSON items, and the legacy one-request
route."""

from __future__ import annotations

import hashlib
import json

import httpx

from trigger_local.engine import Engine
from trigger_local.store.models import Version

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def item(index: int, **options: object) -> dict:
    return {"index": index, "task": "hello", "payload": json.dumps({"json": {"n": index}}),
            "options": {"payloadType": "application/super+json", **options}}


async def test_two_phase_batch_creates_runs_and_retrieve_lists_them(api: httpx.AsyncClient,
                                                                    indexed: Version) -> None:
    created = await api.post("/api/v3/batches", json={"runCount": 2, "taskIdentifiers": ["hello"]})
    assert created.status_code == 202 and created.json()["isCached"] is False
    assert "x-trigger-jwt" in created.headers
    batch_id = created.json()["id"]

    async def stream():  # chunked, split mid-line, like the SDK's streamed upload
        body = ndjson(item(0), item(1, tags=["x"]))
        yield body[:10]
        yield body[10:]

    r = await api.post(f"/api/v3/batches/{batch_id}/items", content=stream(), headers=NDJSON)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": batch_id, "itemsAccepted": 2, "itemsDeduplicated": 0, "sealed": True,
                        "enqueuedCount": 2, "expectedCount": 2}
    batch = (await api.get(f"/api/v2/batches/{batch_id}")).json()
    assert batch["runCount"] == 2 and len(batch["runs"]) == 2 \
        and batch["processing"] == {"errors": []}
    first = (await api.get(f"/api/v3/runs/{batch['runs'][0]}")).json()
    assert first["payload"] == {"n": 0} and first["batchId"] == batch_id \
        and first["triggerFunction"] == "batchTrigger"
    listed = (await api.get("/api/v1/runs", params={"filter[batch]": batch_id})).json()["data"]
    assert len(listed) == 2


async def test_resent_items_are_deduplicated_by_index(api: httpx.AsyncClient, engine: Engine,
                                                      indexed: Version) -> None:
    batch_id = (await api.post("/api/v3/batches", json={"runCount": 3})).json()["id"]
    r1 = await api.post(f"/api/v3/batches/{batch_id}/items", content=ndjson(item(0), item(1)),
                        headers=NDJSON)
    assert r1.json()["sealed"] is False and r1.json()["itemsAccepted"] == 2
    r2 = await api.post(f"/api/v3/batches/{batch_id}/items",
                        content=ndjson(item(0), item(1), item(2)),
                        headers=NDJSON)
    assert (r2.json()["itemsAccepted"], r2.json()["itemsDeduplicated"], r2.json()["sealed"]) \
        == (1, 2, True)
    assert len(await engine.queries.runs.page()) == 3


async def test_batch_key_gives_items_keys_and_caches_the_batch(api: httpx.AsyncClient,
                                                               engine: Engine,
                                                               indexed: Version) -> None:
    key = hashlib.sha256(b"batch-key").hexdigest()
    first = (await api.post("/api/v3/batches", json={"runCount": 1, "idempotencyKey": key})).json()
    await api.post(f"/api/v3/batches/{first['id']}/items", content=ndjson(item(0)), headers=NDJSON)
    run = (await engine.queries.runs.page())[0]
    assert run.idempotency_key == hashlib.sha256(f"{key}-0".encode()).hexdigest()
    again = (await api.post("/api/v3/batches", json={"runCount": 1, "idempotencyKey": key})).json()
    assert again["id"] == first["id"] and again["isCached"] is True \
        and again["idempotencyKey"] == key


async def test_bad_items_are_refused(api: httpx.AsyncClient, indexed: Version) -> None:
    batch_id = (await api.post("/api/v3/batches", json={"runCount": 1})).json()["id"]
    url = f"/api/v3/batches/{batch_id}/items"
    assert (await api.post(url, content=b'{"index": 0,', headers=NDJSON)).status_code == 400
    assert (await api.post(url, content=ndjson(item(5)), headers=NDJSON)).status_code == 400
    r = await api.post(url, content=ndjson(item(0)), headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert (await api.post("/api/v3/batches/batch_nope/items", content=ndjson(item(0)),
                           headers=NDJSON)).status_code == 404
    assert (await api.post("/api/v3/batches", json={"runCount": 0})).status_code == 400
    assert (await api.get("/api/v2/batches/batch_nope")).status_code == 404


async def test_legacy_batch_returns_its_runs(api: httpx.AsyncClient, indexed: Version) -> None:
    body = {"items": [{"task": "hello", "payload": {"n": 1}},
                      {"task": "child", "payload": "x", "options": {"payloadType": "text/plain"}}]}
    r = await api.post("/api/v1/tasks/batch", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["isCached"] is False and [run["taskIdentifier"] for run in out["runs"]] \
        == ["hello", "child"]
    assert (await api.get(f"/api/v3/runs/{out['runs'][1]['id']}")).json()["payload"] == "x"
    batch = (await api.get(f"/api/v2/batches/{out['id']}")).json()
    assert batch["runs"] == [run["id"] for run in out["runs"]]


async def test_legacy_batch_request_idempotency(api: httpx.AsyncClient, engine: Engine,
                                                indexed: Version) -> None:
    headers = {"x-trigger-request-idempotency-key": "req-1"}
    body = {"items": [{"task": "hello"}]}
    first = (await api.post("/api/v1/tasks/batch", json=body, headers=headers)).json()
    second = (await api.post("/api/v1/tasks/batch", json=body, headers=headers)).json()
    assert second["id"] == first["id"] and second["runs"][0]["id"] == first["runs"][0]["id"]
    assert len(await engine.queries.runs.page()) == 1
    assert (await api.post("/api/v1/tasks/batch", json={"items": []})).status_code == 422
