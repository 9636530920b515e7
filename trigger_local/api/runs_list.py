"""`GET /api/v1/runs`: every filter of TRIGGER_API.md §5.3 and cursor pagination (§2.5)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..durations import parse_duration
from ..errors import BadRequestError, ValidationError
from ..machines import MACHINES
from ..projects import check_project_ref
from ..store.models import (
    CANCELED,
    COMPLETED,
    DEQUEUED,
    EXECUTING,
    FAILED,
    FINAL_STATUSES,
    PENDING_VERSION,
    QUEUED,
    WAITING,
    Run,
)
from .common import cursor_param, int_param, ok, require_key, services_of, split_list
from .errors import JsonErrorRoute
from .present import list_item

router = APIRouter(route_class=JsonErrorRoute, tags=["runs"])

STATUSES = frozenset({PENDING_VERSION, "DELAYED", QUEUED, DEQUEUED, EXECUTING, WAITING}
                     | FINAL_STATUSES)
# names older clients (no x-trigger-api-version) send
LEGACY_STATUSES = {"WAITING_FOR_DEPLOY": [PENDING_VERSION], "PENDING": [QUEUED],
                   "REATTEMPTING": [EXECUTING], "RETRYING_AFTER_FAILURE": [EXECUTING],
                   "FROZEN": [WAITING], "PAUSED": [WAITING], "WAITING_TO_RESUME": [WAITING],
                   "INTERRUPTED": [FAILED], "COMPLETED_SUCCESSFULLY": [COMPLETED],
                   "COMPLETED_WITH_ERRORS": [FAILED], "CANCELLED": [CANCELED]}


def parse_statuses(raw: str | None) -> list[str] | None:
    values = split_list(raw)
    if not values:
        return None
    bad = [v for v in values if v.upper() not in STATUSES and v.upper() not in LEGACY_STATUSES]
    if bad:
        raise BadRequestError(f"Invalid status values: {', '.join(bad)}", valid=sorted(STATUSES))
    out: list[str] = []
    for value in values:
        out.extend(LEGACY_STATUSES.get(value.upper(), [value.upper()]))
    return sorted(set(out))


def parse_instant(raw: str | None, name: str) -> float | None:
    """Epoch milliseconds (what the SDK sends) or an ISO date; `nan`, `inf` and instants before
    1970 are a 400 (as a filter they matched nothing or everything, silently)."""
    if not raw:
        return None
    seconds: float | None
    try:
        seconds = float(raw) / 1000
    except ValueError:
        seconds = _iso_seconds(raw)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise BadRequestError(f"{name} must be epoch milliseconds (0 or more) or an ISO date, "
                              f"not {shown!r}")
    return seconds


def _iso_seconds(raw: str) -> float | None:
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def parse_project_refs(raw: str | None, name: str = "filter[project]") -> list[str] | None:
    """Project refs a list filter names; a malformed one is a 400 naming the filter, like every
    other bad query value (it could match no project)."""
    refs = split_list(raw)
    for ref in refs:
        try:
            check_project_ref(ref, name)
        except ValidationError as exc:
            raise BadRequestError(exc.message) from exc
    return refs or None


def created_window(q: dict[str, str], now: float,
                   prefix: str = "filter[createdAt]") -> tuple[float | None, float | None]:
    start = parse_instant(q.get(f"{prefix}[from]"), f"{prefix}[from]")
    end = parse_instant(q.get(f"{prefix}[to]"), f"{prefix}[to]")
    period = q.get(f"{prefix}[period]")
    if period:
        try:
            span = parse_duration(period, what=f"{prefix}[period]")
        except ValidationError as exc:
            raise BadRequestError(exc.message) from exc
        start = max(start or 0.0, now - span)
    return start, end


def _bool(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise BadRequestError(f"{name} must be true or false, not {raw!r}")
    return raw.lower() == "true"


def run_filters(q: dict[str, str], now: float) -> dict[str, Any]:
    """Query parameters → `Ops.list_runs` keyword arguments (400 for values it cannot mean).

    An empty list value (`filter[tag]=`) means no filter, as on Trigger.dev: both SDKs send one
    for an empty list (`runs.list(tag=[])`), so it cannot be a 400; the CLI refuses an empty
    option itself (cli/common.py `given`)."""
    machines = split_list(q.get("filter[machine]"))
    bad = [m for m in machines if m not in MACHINES]
    if bad:
        raise BadRequestError(f"Invalid machine values: {', '.join(bad)} (use "
                              f"{', '.join(MACHINES)})")
    created_from, created_to = created_window(q, now)
    return {
        "statuses": parse_statuses(q.get("filter[status]")),
        "task_ids": split_list(q.get("filter[taskIdentifier]")) or None,
        "version_id": split_list(q.get("filter[version]")) or None,
        "tags": split_list(q.get("filter[tag]")) or None,
        "batch_id": split_list(q.get("filter[batch]")) or None,
        "queue": split_list(q.get("filter[queue]")) or None,
        "machines": machines or None, "schedule_ids": split_list(q.get("filter[schedule]")) or None,
        "projects": parse_project_refs(q.get("filter[project]")),
        "is_test": _bool(q.get("filter[isTest]"), "filter[isTest]"),
        "created_from": created_from, "created_to": created_to,
        "parent_run_id": q.get("filter[parentRun]") or None,
        "search": q.get("filter[search]") or None,
        "idempotency_key": q.get("filter[idempotencyKey]") or None,
    }


def page_of(items: list[Any], size: int, after: str | None, before: str | None,
            key: Any = lambda item: item.id) -> tuple[list[Any], dict[str, str]]:
    """Trim a `size + 1` fetch to `size` and name the neighbouring cursors."""
    more = len(items) > size
    if before:
        items = items[-size:] if more else items
        pagination = {"next": key(items[-1])} if items else {}
        if more and items:
            pagination["previous"] = key(items[0])
        return items, pagination
    items = items[:size]
    pagination = {}
    if more and items:
        pagination["next"] = key(items[-1])
    if after and items:
        pagination["previous"] = key(items[0])
    return items, pagination


@router.get("/api/v1/runs")
async def list_runs(request: Request,
                    status: str | None = Query(None, alias="filter[status]"),
                    task: str | None = Query(None, alias="filter[taskIdentifier]"),
                    tag: str | None = Query(None, alias="filter[tag]"),
                    size: str | None = Query(None, alias="page[size]"),
                    after: str | None = Query(None, alias="page[after]"),
                    before: str | None = Query(None, alias="page[before]")) -> Response:
    """Newest first; also `filter[version|batch|queue|machine|isTest|createdAt|project][…]`.
    A project key lists its own project's runs only."""
    svc = services_of(request)
    caller = require_key(request, svc, "read:runs")
    q = dict(request.query_params)
    filters = run_filters(q, svc.engine.clock.now())
    page_size = int_param(size, "page[size]", 25, 1, 100)
    after = cursor_param(after, "page[after]", "run_")
    before = cursor_param(before, "page[before]", "run_")
    runs: list[Run] = []
    if caller.scoped and filters["projects"] and caller.project not in filters["projects"]:
        pass  # another project's runs: none for this key
    else:
        if caller.scoped:
            filters["projects"] = [caller.project]
        runs = await svc.engine.queries.runs.page(**filters, after=after or None,
                                                  before=before or None, limit=page_size + 1)
    runs, pagination = page_of(runs, page_size, after, before)
    now = svc.engine.clock.now()
    return ok({"data": [list_item(r, now) for r in runs], "pagination": pagination})
