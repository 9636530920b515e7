"""Waitpoint tokens (§6): create, complete, retrieve, list, the unauthenticated HMAC-signed
callback URL, and our forced timeout."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from .. import limits, packets
from ..durable_calls import Call
from ..engine import Engine
from ..errors import AuthenticationError, BadRequestError, JsonTooDeepError, NotFoundError
from ..statuses import WaitpointStatus
from ..store.models import WP_MANUAL, Waitpoint
from ..strict_json import find_non_json
from . import auth
from .auth import ADMIN, Caller
from .common import (
    base_url,
    body_doc,
    cursor_param,
    int_param,
    jwt_header,
    ok,
    read_json,
    read_payload_body,
    require_key,
    require_known_project,
    services_of,
    split_list,
)
from .errors import JsonErrorRoute
from .present import token_item
from .runs_list import created_window, page_of
from .services import DaemonServices

router = APIRouter(route_class=JsonErrorRoute, tags=["waitpoints"])

TOKEN_STATUSES = tuple(WaitpointStatus)
TOKEN_JWT_TTL_S = 24 * 3600


def callback_url(request: Request, svc: DaemonServices, waitpoint_id: str) -> str:
    return (f"{base_url(request, svc)}/api/v1/waitpoints/tokens/{waitpoint_id}/callback/"
            f"{auth.callback_hash(svc.secret_key, waitpoint_id)}")


def output_packet(value: Any) -> tuple[str, str]:
    """Trigger.dev's `stringifyIO`: strings as text, anything else as SuperJSON."""
    if isinstance(value, str):
        return value, packets.TEXT
    return json.dumps({"json": value}, separators=(",", ":")), packets.SUPER_JSON


async def get_token(engine: Engine, waitpoint_id: str, caller: Caller = ADMIN) -> Waitpoint:
    """The token, or 404 (also for another project's token and a project key)."""
    wp = await engine.queries.waitpoints.get(waitpoint_id)
    if wp is None or wp.type != WP_MANUAL or not caller.sees(wp.project):
        raise NotFoundError("Waitpoint not found", waitpoint_id=waitpoint_id)
    return wp


async def create_token(request: Request, svc: DaemonServices, body: dict[str, Any],
                       run_id: str | None = None,
                       record: Call | None = None,
                       project: str | None = None) -> tuple[Waitpoint, bool]:
    """Shared by the management route and the worker route (a token made inside a task). The
    token is `project`'s (the caller's, or the run's)."""
    key, key_ttl, tags = body.get("idempotencyKey"), body.get("idempotencyKeyTTL"), body.get("tags")
    if key is not None and not isinstance(key, str):
        raise BadRequestError("idempotencyKey must be a string")
    if key_ttl is not None and not isinstance(key_ttl, str):
        raise BadRequestError("idempotencyKeyTTL must be a string like 1h")
    if tags is not None and not isinstance(tags, str | list):
        raise BadRequestError("tags must be a string or a list of strings")
    timeout = body.get("timeout")
    if timeout is not None and not isinstance(timeout, str | int | float):
        raise BadRequestError("timeout must be a duration (10m) or an ISO date")
    options: dict[str, Any] = {"timeout": timeout, "idempotency_key": key or None,
                               "idempotency_key_ttl": key_ttl,
                               "tags": [tags] if isinstance(tags, str) else tags,
                               "project": project}
    if run_id is not None and record is not None:  # a durable call (docs/durability.md)
        return await svc.engine.records.token(run_id, record, **options)
    return await svc.engine.create_token(created_by_run_id=run_id, **options)


@router.post("/api/v1/waitpoints/tokens",
             openapi_extra=body_doc({"timeout": {"type": "string"},
                                     "idempotencyKey": {"type": "string"},
                                     "idempotencyKeyTTL": {"type": "string"},
                                     "tags": {"type": "array", "items": {"type": "string"}}}))
async def create(request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc)
    require_known_project(svc, caller)
    wp, cached = await create_token(request, svc, await read_json(request, svc),
                                    project=caller.project)
    return ok({"id": wp.id, "isCached": cached, "url": callback_url(request, svc, wp.id)},
              headers=jwt_header(svc, [f"write:waitpoints:{wp.id}"], TOKEN_JWT_TTL_S))


@router.post("/api/v1/waitpoints/tokens/{waitpoint_id}/complete",
             openapi_extra=body_doc({"data": {}}))
async def complete(waitpoint_id: str, request: Request) -> Response:
    """Idempotent: completing a finished token answers success and changes nothing. Ours:
    `changed` says whether this call completed it (false: it was completed or timed out
    before); Trigger.dev's client reads `success` only."""
    svc = services_of(request)
    caller = require_key(request, svc, f"write:waitpoints:{waitpoint_id}")
    body = await read_json(request, svc)
    await get_token(svc.engine, waitpoint_id, caller)
    output, output_type = output_packet(body["data"]) if "data" in body else (None, packets.JSON)
    _, changed = await svc.engine.complete_token(waitpoint_id, output, output_type)
    return ok({"success": True, "changed": changed})


@router.post("/api/v1/waitpoints/tokens/{waitpoint_id}/callback/{signature}",
             openapi_extra=body_doc({}))
async def callback(waitpoint_id: str, signature: str, request: Request) -> Response:
    """No auth: the URL's HMAC is the credential. The whole JSON body is the output."""
    svc = services_of(request)
    if not auth.same(signature, auth.callback_hash(svc.secret_key, waitpoint_id)):
        raise AuthenticationError("Invalid URL, hash doesn't match")
    raw = await read_payload_body(request, svc)
    try:
        data = limits.loads(raw) if raw.strip() else {}
    except JsonTooDeepError as exc:
        raise BadRequestError(f"Request body is not valid JSON: {exc}") from exc
    except (ValueError, UnicodeDecodeError):
        data = {}  # Trigger.dev's rule: a body that is not JSON completes with {}
    if find_non_json(data) is not None:
        data = {}  # NaN, Infinity or a lone surrogate: not JSON either
    await get_token(svc.engine, waitpoint_id)
    await svc.engine.complete_token(waitpoint_id, *output_packet(data))
    return ok({"success": True})


@router.post("/api/v1/waitpoints/tokens/{waitpoint_id}/timeout")
async def force_timeout(waitpoint_id: str, request: Request) -> Response:
    """Ours: time a WAITING token out now (what its timeout would do); `changed` says whether
    this call did (false: it was completed or timed out before)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    await get_token(svc.engine, waitpoint_id, caller)
    wp, changed = await svc.engine.timeout_token(waitpoint_id)
    return ok({**token_item(wp, callback_url(request, svc, wp.id), with_output=True),
               "changed": changed})


@router.get("/api/v1/waitpoints/tokens/{waitpoint_id}")
async def retrieve(waitpoint_id: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc, f"read:waitpoints:{waitpoint_id}")
    wp = await get_token(svc.engine, waitpoint_id, caller)
    blocked = await svc.engine.queries.waitpoints.waiting_runs([wp.id])
    return ok(token_item(wp, callback_url(request, svc, wp.id), with_output=True,
                         blocked_run_ids=blocked.get(wp.id, [])))


def _statuses(raw: str | None) -> list[str] | None:
    values = [v.upper() for v in split_list(raw)]
    bad = [v for v in values if v not in TOKEN_STATUSES]
    if bad:
        raise BadRequestError(f"Invalid status values: {', '.join(bad)}",
                              valid=list(TOKEN_STATUSES))
    return values or None


@router.get("/api/v1/waitpoints/tokens")
async def list_tokens(request: Request,
                      status: str | None = Query(None, alias="filter[status]"),
                      tags: str | None = Query(None, alias="filter[tags]"),
                      key: str | None = Query(None, alias="filter[idempotencyKey]"),
                      size: str | None = Query(None, alias="page[size]"),
                      after: str | None = Query(None, alias="page[after]"),
                      before: str | None = Query(None, alias="page[before]")) -> Response:
    """Newest first; also `filter[createdAt][period|from|to]`. Each token also says which runs
    waited or wait on it (`blockedRunIds`, ours)."""
    svc = services_of(request)
    caller = require_key(request, svc, "read:waitpoints")
    page_size = int_param(size, "page[size]", 25, 1, 100)
    after = cursor_param(after, "page[after]", "waitpoint_")
    before = cursor_param(before, "page[before]", "waitpoint_")
    created_from, created_to = created_window(dict(request.query_params), svc.engine.clock.now())
    wps = await svc.engine.queries.waitpoints.page(
        type_=WP_MANUAL, statuses=_statuses(status), tags=split_list(tags) or None,
        idempotency_key=key or None, created_from=created_from, created_to=created_to,
        after=after or None, before=before or None, limit=page_size + 1,
        project=caller.project if caller.scoped else None)
    wps, pagination = page_of(wps, page_size, after, before)
    blocked = await svc.engine.queries.waitpoints.waiting_runs([wp.id for wp in wps])
    return ok({"data": [token_item(wp, callback_url(request, svc, wp.id),
                                   blocked_run_ids=blocked.get(wp.id, []))
                        for wp in wps],
               "pagination": pagination})
