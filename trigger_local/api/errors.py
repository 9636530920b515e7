"""Every failure leaves the API as JSON `{"error": message, "code": code, ...details}`.

Errors are turned into responses inside the route (`JsonErrorRoute`) rather than by a
middleware, so the hot worker routes pay for one try/except and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Scope

from ..disk import disk_full_error
from ..errors import TriggerLocalError
from ..supervise import report
from .common import SafeJSONResponse, services_of
from .path_segments import ESCAPED, path_params

#: answers that a later try can change: a full disk (507) and a stopping daemon (503)
RETRYABLE_STATUSES = frozenset({503, 507})


def error_response(status: int, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    # the official client retries 409 and 5xx ~9 s unless told not to; ours are deterministic,
    # except a full disk or a stopping daemon, where a later try may well succeed
    if status in RETRYABLE_STATUSES:
        headers.setdefault("retry-after", "1")
    elif status == 409 or status >= 500:
        headers["x-should-retry"] = "false"
    return SafeJSONResponse(body, status_code=status, headers=headers)


def from_error(exc: TriggerLocalError) -> JSONResponse:
    return error_response(exc.status, exc.to_body())


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": list(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, {"error": f"Invalid request: {where}: {first['message']}",
                                "code": "invalid", "details": details})


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    full = disk_full_error(exc, services_of(request).settings.home)
    if full is not None:  # nothing was written: the same request works once there is space
        report("warning", "request refused: disk full", method=request.method,
               path=request.url.path)
        return from_error(full)
    report("error", "unhandled error", method=request.method, path=request.url.path,
           error=repr(exc), exc_info=exc)
    return error_response(500, {"error": "Something went wrong", "code": "internal"})


async def json_errors(request: Request,
                      handler: Callable[[Request], Coroutine[Any, Any, Response]]) -> Response:
    """`handler`'s answer, every exception but HTTPException turned into our JSON error body."""
    try:
        return await handler(request)
    except TriggerLocalError as exc:
        return from_error(exc)
    except RequestValidationError as exc:
        return _validation_response(exc)
    except HTTPException:
        raise
    except ClientDisconnect:
        return _client_gone(request)
    except Exception as exc:  # noqa: BLE001 - the client gets JSON, the log gets the trace
        return _unexpected(request, exc)


def _client_gone(request: Request) -> JSONResponse:
    """The client closed its connection before it sent the whole body: nothing was done and
    the answer reaches no one; not a daemon error (it logged one with a trace per such close)."""
    report("info", "request body cut short: the client closed the connection",
           method=request.method, path=request.url.path)
    return error_response(400, {"error": "The connection closed before the request's body "
                                         "was read", "code": "client_disconnected"})


def http_error(exc: HTTPException) -> JSONResponse:
    messages = {404: "Resource not found", 405: "Method not allowed"}
    body = {"error": messages.get(exc.status_code, str(exc.detail)),
            "code": f"http_{exc.status_code}"}
    return error_response(exc.status_code, body, dict(exc.headers or {}))


class JsonErrorRoute(APIRoute):
    """An APIRoute whose handler turns every exception into our JSON error body."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and ESCAPED in scope:  # api/path_segments.py
            child["path_params"] = path_params(child["path_params"])
        return match, child

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await json_errors(request, handler)

        return route_handler


def install_handlers(app: FastAPI) -> None:
    """Handlers for what happens outside a route: unknown paths, wrong methods."""

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_error(exc)

    async def on_local(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TriggerLocalError)
        return from_error(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return _unexpected(request, exc)

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(TriggerLocalError, on_local)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
