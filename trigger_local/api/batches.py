"""Batch triggering: the SDK 4.x two-phase API (`/api/v3/batches` then NDJSON items), its
retrieve route, and the one-request legacy `/api/v1/tasks/batch` the Python SDK uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..engine import TriggerRequest
from ..errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from ..strict_json import shown
from .common import (
    body_chunks,
    body_doc,
    body_limit,
    jwt_header,
    ok,
    parse_json,
    read_json,
    require_key,
    require_known_project,
    services_of,
)
from .errors import JsonErrorRoute
from .options import batch_item_request, flag_option
from .packets import check_payload_packets
from .present import batch_item
from .services import DaemonServices
from .triggers import request_cache_key

router = APIRouter(route_class=JsonErrorRoute, tags=["batches"])

MAX_BATCH_SIZE = 1000
_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")


def _run_count(body: dict[str, Any]) -> int:
    count = body.get("runCount")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_BATCH_SIZE:
        raise BadRequestError(f"runCount must be a whole number from 1 to {MAX_BATCH_SIZE}, not "
                              f"{shown(count)}")
    return count


@router.post("/api/v3/batches", status_code=202,
             openapi_extra=body_doc({"runCount": {"type": "integer"},
                                     "taskIdentifiers": {"type": "array",
                                                         "items": {"type": "string"}},
                                     "parentRunId": {"type": "string"},
                                     "resumeParentOnCompletion": {"type": "boolean"},
                                     "idempotencyKey": {"type": "string"}}, ["runCount"]))
async def create_batch(request: Request) -> Response:
    """Phase 1: reserve a batch of `runCount` runs; a known idempotency key (or request key)
    returns it cached."""
    svc = services_of(request)
    caller = require_key(request, svc)
    require_known_project(svc, caller)
    body = await read_json(request, svc)
    batch, is_cached = await svc.engine.create_batch(
        _run_count(body), parent_run_id=_parent(body),
        wait=_waits(body),
        idempotency_key=_batch_key(body), request_key=request_cache_key(request, "batch"),
        project=caller.project)
    out: dict[str, Any] = {"id": batch.id, "runCount": batch.run_count, "isCached": is_cached}
    if batch.idempotency_key:
        out["idempotencyKey"] = batch.idempotency_key
    return ok(out, 202, jwt_header(svc, [f"read:batch:{batch.id}"]))


def _waits(body: dict[str, Any]) -> bool:
    return flag_option(body.get("resumeParentOnCompletion"), "resumeParentOnCompletion")


def _parent(body: dict[str, Any]) -> str | None:
    parent = body.get("parentRunId")
    if parent is not None and not isinstance(parent, str):
        raise BadRequestError(f"parentRunId must be a run id, not {str(parent)[:40]}")
    return parent or None


def _batch_key(body: dict[str, Any]) -> str | None:
    key = body.get("idempotencyKey")
    if key is not None and (not isinstance(key, str) or len(key) > 2048):
        raise BadRequestError("idempotencyKey must be a string of at most 2048 characters")
    return key or None


async def _ndjson_lines(request: Request, line_limit: int,
                        payload_limit: int) -> AsyncIterator[tuple[int, bytes]]:
    buffer, number = b"", 0
    async for chunk in body_chunks(request):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > line_limit:
            raise PayloadTooLargeError.over_limit(f"Batch item {number + len(lines) + 1}",
                                                  payload_limit)
        for line in lines:
            number += 1
            if line.strip():
                yield number, line
    if buffer.strip():
        yield number + 1, buffer


async def _read_items(request: Request, svc: DaemonServices,
                      run_count: int) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    async for number, line in _ndjson_lines(request, body_limit(svc),
                                            svc.settings.payload_limit_bytes):
        item = parse_json(line, f"Line {number}")
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < run_count:
            raise BadRequestError(f"Line {number}: index must be a whole number from 0 to "
                                  f"{run_count - 1}")
        items.append((index, item))
    return items


@router.post("/api/v3/batches/{batch_id}/items",
             openapi_extra=body_doc({"index": {"type": "integer"}, "task": {"type": "string"},
                                     "payload": {}, "options": {"type": "object"}},
                                    ["index", "task"], "application/x-ndjson"))
async def add_batch_items(batch_id: str, request: Request) -> Response:
    """Phase 2: NDJSON items, streamed; items whose index arrived before are not created again."""
    svc = services_of(request)
    caller = require_key(request, svc)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _NDJSON_TYPES:
        raise UnsupportedMediaTypeError("Batch items must be sent as application/x-ndjson, not "
                                        f"{content_type!r}")
    batch = await svc.engine.queries.batches.get(batch_id)
    if batch is None or not caller.sees(batch.project):
        raise NotFoundError(f"Batch {batch_id} not found")
    require_known_project(svc, caller)  # the items' runs go to the header's project
    items = await _read_items(request, svc, batch.run_count)
    # one item stream at a time, so index dedupe sees what the previous stream added
    async with request.app.state.batch_items_lock:
        seen = await svc.engine.batch_items(batch_id)
        fresh: dict[int, Any] = {}
        for index, item in items:
            if str(index) not in seen and index not in fresh:
                fresh[index] = item
        reqs = {i: batch_item_request(fresh[i], i, batch.idempotency_key) for i in sorted(fresh)}
        await check_payload_packets(svc, caller, reqs.values())
        if reqs:
            seen = await svc.engine.fill_batch(batch, reqs, caller.project)
    return ok({"id": batch_id, "itemsAccepted": len(reqs),
               "itemsDeduplicated": len(items) - len(reqs),
               "sealed": len(seen) >= batch.run_count, "enqueuedCount": len(seen),
               "expectedCount": batch.run_count})


@router.get("/api/v2/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc, f"read:batch:{batch_id}")
    read = svc.engine.queries
    batch = await read.batches.get(batch_id)
    if batch is None or not caller.sees(batch.project):
        raise NotFoundError(f"Batch {batch_id} not found")
    return ok(batch_item(batch, await read.runs.get_many(batch.run_ids)))


def _legacy_items(body: dict[str, Any], batch_key: str | None) -> list[TriggerRequest]:
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ValidationError("items must be a non-empty list of {task, payload, options}")
    if len(items) > MAX_BATCH_SIZE:
        raise ValidationError(f"A batch can have at most {MAX_BATCH_SIZE} items, not {len(items)}")
    return [batch_item_request(item, i, batch_key) for i, item in enumerate(items)]


@router.post("/api/v1/tasks/batch",
             openapi_extra=body_doc({"items": {"type": "array", "items": {"type": "object"}},
                                     "parentRunId": {"type": "string"},
                                     "idempotencyKey": {"type": "string"}}, ["items"]))
async def legacy_batch(request: Request) -> Response:
    """One request, runs in the answer:
    `{"id", "isCached", "runs": [{id, taskIdentifier, isCached}]}`.
    The batch and its runs are made in one transaction, so the same idempotency key or request
    key sent concurrently makes one batch."""
    svc = services_of(request)
    caller = require_key(request, svc)
    require_known_project(svc, caller)
    body = await read_json(request, svc)
    batch_key = _batch_key(body)
    reqs = _legacy_items(body, batch_key)
    await check_payload_packets(svc, caller, reqs)
    for req in reqs:
        req.project = caller.project  # None: each task's one project, or the parent's
    batch, results, is_cached = await svc.engine.batch_trigger(
        reqs, parent_run_id=_parent(body), wait=_waits(body),
        idempotency_key=batch_key, request_key=request_cache_key(request, "batch"))
    runs = [{"id": r.run.id, "taskIdentifier": r.run.task_id, "isCached": r.cached}
            for r in results]
    out: dict[str, Any] = {"id": batch.id, "isCached": is_cached, "runs": runs}
    if batch.idempotency_key:
        out["idempotencyKey"] = batch.idempotency_key
    return ok(out, headers=jwt_header(svc, [f"read:batch:{batch.id}"]))
