"""Idempotency under concurrency, against a real daemon: 16 identical requests sent at once, a
few rounds, with the same `x-trigger-request-idempotency-key` header or the same body
`idempotencyKey`, on the trigger route, the one-request batch route and the v3 batch route.
Each round makes exactly one run (or batch), and every request answers with it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from .conftest import DaemonProcess

CONCURRENT = 16
ROUNDS = 3

Send = Callable[[httpx.AsyncClient, str, str], Awaitable[httpx.Response]]


async def _trigger_header(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v1/tasks/hello/trigger",
                        json={"payload": {}, "options": {"tags": [tag]}},
                        headers={"x-trigger-request-idempotency-key": key})


async def _trigger_body(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v1/tasks/hello/trigger",
                        json={"payload": {}, "options": {"tags": [tag], "idempotencyKey": key}})


async def _batch_header(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v1/tasks/batch",
                        json={"items": [{"task": "hello", "options": {"tags": [tag]}}] * 2},
                        headers={"x-trigger-request-idempotency-key": key})


async def _batch_body(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v1/tasks/batch",
                        json={"items": [{"task": "hello", "options": {"tags": [tag]}}] * 2,
                              "idempotencyKey": key})


async def _v3_header(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v3/batches", json={"runCount": 2},
                        headers={"x-trigger-request-idempotency-key": key})


async def _v3_body(c: httpx.AsyncClient, key: str, tag: str) -> httpx.Response:
    return await c.post("/api/v3/batches", json={"runCount": 2, "idempotencyKey": key})


async def _rounds(d: DaemonProcess, send: Send) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    limits = httpx.Limits(max_connections=CONCURRENT * 2)
    async with httpx.AsyncClient(base_url=d.url, headers={"Authorization": f"Bearer {d.key}"},
                                 limits=limits, timeout=30) as client:
        for _ in range(ROUNDS):
            key, tag = uuid.uuid4().hex, f"round-{uuid.uuid4().hex[:12]}"
            answers = await asyncio.gather(*[send(client, key, tag) for _ in range(CONCURRENT)])
            assert all(r.status_code in (200, 202) for r in answers), [r.text for r in answers]
            out.append((tag, [r.json() for r in answers]))
    return out


def _runs_tagged(d: DaemonProcess, tag: str) -> list[str]:
    data = d.api("GET", "/api/v1/runs",
                 params={"filter[tag]": tag, "page[size]": 100}).json()["data"]
    return [r["id"] for r in data]


@pytest.mark.parametrize("send", [_trigger_header, _trigger_body], ids=["header", "body-key"])
def test_concurrent_triggers_with_one_key_make_one_run(ready: DaemonProcess, send: Send) -> None:
    for tag, answers in asyncio.run(_rounds(ready, send)):
        ids = {a["id"] for a in answers}
        assert len(ids) == 1, f"{len(ids)} runs for one key"
        assert _runs_tagged(ready, tag) == list(ids)
        if send is _trigger_header:  # the same request again: the first answer, word for word
            assert all(a == answers[0] for a in answers), answers
        else:  # the same key in another request: the run it made, marked cached
            assert sorted(a["isCached"] for a in answers) == [False] + [True] * (CONCURRENT - 1)


@pytest.mark.parametrize("send", [_batch_header, _batch_body], ids=["header", "body-key"])
def test_concurrent_batches_with_one_key_make_one_batch(ready: DaemonProcess, send: Send) -> None:
    for tag, answers in asyncio.run(_rounds(ready, send)):
        assert len({a["id"] for a in answers}) == 1, answers
        run_ids = {json.dumps(sorted(r["id"] for r in a["runs"])) for a in answers}
        assert len(run_ids) == 1, "every answer lists the same runs"
        assert sorted(_runs_tagged(ready, tag)) == json.loads(run_ids.pop())
        assert len(answers[0]["runs"]) == 2


@pytest.mark.parametrize("send", [_v3_header, _v3_body], ids=["header", "body-key"])
def test_concurrent_v3_batch_creation_with_one_key_makes_one_batch(
        ready: DaemonProcess, send: Send) -> None:
    before = _batch_count(ready)
    rounds = asyncio.run(_rounds(ready, send))
    for _, answers in rounds:
        assert len({a["id"] for a in answers}) == 1, answers
    assert _batch_count(ready) == before + ROUNDS


def _batch_count(d: DaemonProcess) -> int:
    with sqlite3.connect(f"file:{d.home / 'trigger-local.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM batches").fetchone()[0])
