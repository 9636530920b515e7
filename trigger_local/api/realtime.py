"""Realtime run subscriptions: the subset of ElectricSQL's shape protocol @trigger.dev/sdk
4.8.3 speaks (docs/realtime.md), and the route that lets it sign public access tokens.

    GET /realtime/v1/runs/{runId}       one run
    GET /realtime/v1/runs?tags=a,b      runs carrying every tag (createdAt=24h window)
    GET /realtime/v1/batches/{batchId}  a batch's runs

A first request (`offset=-1`) gets the shape's rows as `insert` messages; a request with an
offset gets the rows of runs that changed after it as `update` messages — at once, or with
`live=true` as soon as one changes (up to `realtime_hold_s`). Every answer ends with the
`up-to-date` control message (the client emits rows only then) and carries the new offset:
the durable event seq read up to (api/shapes.py). A row is the run's full state, so a run that
changed several times between two requests is sent once, as it is now."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine.events import Draining, Event
from ..errors import BadRequestError
from .auth import ENV_ID, Caller
from .common import ok, require_key, services_of, split_list
from .errors import JsonErrorRoute
from .realtime_rows import REQUIRED_COLUMNS, electric_row, python_row
from .services import DaemonServices
from .shapes import Shape, check_tags, created_window

router = APIRouter(route_class=JsonErrorRoute, tags=["realtime"])

CORS = {"access-control-allow-origin": "*", "access-control-expose-headers": "*"}
_UP_TO_DATE = {"headers": {"control": "up-to-date"}}
_cursor = [0]


def parse_offset(value: str | None) -> int | None:
    """`-1` (or none) → None: from the start; `<seq>_<n>` → seq."""
    if value is None or value in ("", "-1"):
        return None
    head, _, tail = value.partition("_")
    if not head.isdigit() or (tail and not tail.isdigit()) or len(head) > 18:
        raise BadRequestError(f"Invalid offset {value!r}: send -1, or the electric-offset of "
                              "the previous answer")
    return int(head)


async def _wait_for_change(svc: DaemonServices, shape: Shape,
                           after: int) -> tuple[list[Any], int]:
    read, hub = svc.engine.queries, svc.engine.hub
    woken = asyncio.Event()

    def wake(event: Event) -> None:  # stored events only: stream chunks are notices
        if event.type is not None or isinstance(event, Draining):
            woken.set()

    unsubscribe = hub.subscribe(Event, wake)
    deadline = asyncio.get_running_loop().time() + svc.settings.realtime_hold_s
    try:
        while True:
            woken.clear()
            runs, after = await shape.changes(read, after)
            left = deadline - asyncio.get_running_loop().time()
            if runs or left <= 0 or hub.draining.is_set():
                return runs, after
            try:
                await asyncio.wait_for(woken.wait(), left)
            except TimeoutError:
                pass
    finally:
        unsubscribe()


async def _answer(request: Request, shape: Shape) -> Response:
    svc = services_of(request)
    read, query = svc.engine.queries, request.query_params
    after = parse_offset(query.get("offset"))
    live = query.get("live") == "true"
    skip = frozenset(split_list(query.get("skipColumns"))) - REQUIRED_COLUMNS
    python = query.get("format") == "run"
    if query.get("format") not in (None, "", "run"):
        raise BadRequestError("format must be run (the REST run object) or absent")
    if after is None or not query.get("handle"):
        seq = await read.events.last_seq()  # before the rows: a later change is sent later
        runs, operation = await shape.snapshot(read), "insert"
    elif live:
        runs, seq = await _wait_for_change(svc, shape, after)
        operation = "update"
    else:
        runs, seq = await shape.changes(read, after)
        operation = "update"
    now = svc.engine.clock.now()
    messages: list[Any] = []
    for run in runs:
        keys = await read.streams.keys(run.id)
        value = python_row(run, keys, now) if python else electric_row(run, keys, skip)
        messages.append({"key": run.id, "value": value, "headers": {"operation": operation}})
    messages.append(_UP_TO_DATE)
    headers = {**CORS, "electric-offset": f"{seq}_0", "electric-handle": shape.handle,
               "electric-up-to-date": "", "cache-control": "no-store"}
    if live:
        _cursor[0] += 1
        headers["electric-cursor"] = str(_cursor[0])
    else:
        headers["electric-schema"] = "{}"
    return JSONResponse(messages, headers=headers)


def _caller(request: Request, scopes: list[str]) -> Caller:
    return require_key(request, services_of(request), scopes)


@router.get("/realtime/v1/runs/{run_id}")
async def subscribe_run(run_id: str, request: Request) -> Response:
    """One run's changes until it ends. A public token needs read on the run, its task, one of
    its tags or its batch."""
    svc = services_of(request)
    run = await svc.engine.queries.runs.get(run_id)
    scopes = [f"read:runs:{run_id}"]
    if run is not None:
        scopes += [f"read:tasks:{run.task_id}", *(f"read:tags:{t}" for t in run.tags)]
        scopes += [f"read:batch:{run.batch_id}"] if run.batch_id else []
    return await _answer(request, Shape("run", _caller(request, scopes), run_id=run_id))


@router.get("/realtime/v1/runs")
async def subscribe_tags(request: Request) -> Response:
    """Runs carrying every tag in `tags` (none: every run), created within `createdAt`."""
    svc = services_of(request)
    tags = check_tags(split_list(request.query_params.get("tags")))
    window = created_window(request.query_params.get("createdAt"))
    caller = _caller(request, ["read:runs", "read:tags", *(f"read:tags:{t}" for t in tags)])
    shape = Shape("tags", caller, tags=tags)
    shape.fix_window(request.query_params.get("handle"), svc.engine.clock.now(), window)
    return await _answer(request, shape)


@router.get("/realtime/v1/batches/{batch_id}")
async def subscribe_batch(batch_id: str, request: Request) -> Response:
    caller = _caller(request, [f"read:batch:{batch_id}", "read:runs"])
    return await _answer(request, Shape("batch", caller, batch_id=batch_id))


@router.options("/realtime/v1/{path:path}", include_in_schema=False)
async def preflight(path: str, request: Request) -> Response:
    """Browsers preflight the SDK's headers: allow them all."""
    asked = request.headers.get("access-control-request-headers", "*")
    return Response(status_code=200, headers={
        **CORS, "access-control-allow-methods": "GET, HEAD, POST, PUT, OPTIONS",
        "access-control-allow-headers": asked, "access-control-max-age": "300"})


@router.post("/api/v1/auth/jwt/claims")
async def jwt_claims(request: Request) -> Response:
    """The claims @trigger.dev/sdk's `auth.createPublicToken` signs (with the key it holds)."""
    require_key(request, services_of(request))
    return ok({"sub": ENV_ID, "pub": True})
