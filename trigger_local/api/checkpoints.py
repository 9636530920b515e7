"""The freeze handshake of the worker protocol (docs/worker-protocol.md, "Checkpoints").

A runtime told `checkpoint` by the wait call has closed its other connections; it POSTs here
with `Connection: close` and then stays quiet for `pollAfterS`. The daemon dumps it meanwhile."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .common import ok, services_of
from .errors import JsonErrorRoute
from .worker import run_auth

router = APIRouter(route_class=JsonErrorRoute, tags=["worker"])


@router.post("/engine/v1/runs/{run_id}/attempts/{attempt}/freeze")
async def freeze(run_id: str, attempt: int, request: Request) -> Response:
    """`{"freeze": true, "pollAfterS": s}` when a dump will start now, else `{"freeze": false}`
    (the runtime then just keeps polling: the run is held)."""
    svc = services_of(request)
    run_auth(request).check_attempt(request, run_id, attempt)
    request_freeze = getattr(svc, "request_freeze", None)  # an in-process test daemon may have none
    answer: dict[str, Any] = {"freeze": False}
    if request_freeze is not None:
        answer = request_freeze(run_id, attempt)
    return ok(answer)
