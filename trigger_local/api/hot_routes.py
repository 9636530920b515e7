"""The single trigger route, `POST /api/v1/tasks/{taskId}/trigger`, answered before FastAPI
(issue #13).

A trigger is the one management call made once per run (one HTTP trigger per run is how the
peers enqueue: Huey, Celery, Dramatiq), and on its way to `trigger_task` FastAPI matched the
path against every route registered before it (the worker protocol's first) and solved the
endpoint's dependencies: measured in-process, that was about as much time as the route's own
work. Before the router, every request also went through FastAPI's and Starlette's calls and
their middleware stack (the server-error, exception-telemetry and body-limit layers): ~3 % of
the daemon's loop during one-HTTP-trigger-per-run throughput (py-spy). `HotRoutes` is the app
the daemon serves (`api/app.py` `create_served_app`): it matches this path itself and calls the
same endpoint (api/triggers.py) with the same JSON errors (api/errors.py); every other
request, and the OpenAPI description of this one, is FastAPI's as before.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import http_error, json_errors
from .triggers import trigger_task

_PREFIX = "/api/v1/tasks/"
_SUFFIX = "/trigger"


def trigger_task_id(path: str) -> str | None:
    """The task id of a trigger route's path (as `{task_id:path}` matches it: it may hold "/"),
    or None for any other path. `/api/v1/tasks/batch` and the like are not triggers."""
    if path.startswith(_PREFIX) and path.endswith(_SUFFIX) \
            and len(path) >= len(_PREFIX) + len(_SUFFIX):
        return path[len(_PREFIX):len(path) - len(_SUFFIX)]
    return None


class HotRoutes:
    """ASGI app around the FastAPI `app`: the trigger route straight to its endpoint, the rest
    to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task_id = trigger_task_id(scope["path"]) \
            if scope["type"] == "http" and scope["method"] == "POST" else None
        if task_id is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # as Starlette sets it: the endpoint reads `app.state`
        request = Request(scope, receive)
        try:
            response = await json_errors(request, lambda r: trigger_task(task_id, r))
        except HTTPException as exc:
            response = http_error(exc)
        await response(scope, receive, send)
