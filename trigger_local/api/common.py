"""Small helpers every route module uses: the services, bodies within the size limit, JSON
answers, auth shortcuts and query parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import (
    BadRequestError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    UnsupportedMediaTypeError,
)
from ..limits import BODY_OVERHEAD_BYTES
from ..strict_json import dumps_answer, dumps_js, loads_strict
from . import auth
from .services import DaemonServices


def services_of(request: Request) -> DaemonServices:
    services: DaemonServices = request.app.state.services
    return services


def body_limit(svc: DaemonServices) -> int:
    return svc.settings.payload_limit_bytes + BODY_OVERHEAD_BYTES


async def read_payload_body(request: Request, svc: DaemonServices) -> bytes:
    """A body that carries a payload, output, data or metadata: refused past the payload limit
    plus room for the JSON around it, with the payload limit's own message (one limit, one
    message, whichever check trips first)."""
    return await read_body(request, body_limit(svc), svc.settings.payload_limit_bytes)


async def read_body(request: Request, limit: int, payload_limit: int | None = None) -> bytes:
    """The raw body, refused with 413 past `limit` (also for chunked uploads with no length).
    With `payload_limit` the error names that limit and its setting, else `limit`."""

    def too_large(size: int | None) -> PayloadTooLargeError:
        if payload_limit is not None:
            return PayloadTooLargeError.over_limit("Request body", payload_limit, size)
        return PayloadTooLargeError.over_limit("Request body", limit, size, name="limit",
                                               setting=None)

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared))
    chunks, size = [], 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            raise too_large(None)
        chunks.append(chunk)
    return b"".join(chunks)


def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; 415 when it is compressed (a Content-Encoding other than
    identity), which no route decodes: it read as bytes that are not UTF-8, or, with a plain
    body, the header was ignored."""
    codings = ",".join(request.headers.getlist("content-encoding")).lower().split(",")
    # every header and every coding listed in one: a second header is not ignored
    if (encoding := next((c for c in map(str.strip, codings) if c not in ("", "identity")),
                         None)) is not None:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding[:40]} is not supported: send the body uncompressed, "
            "with no Content-Encoding header")
    return request.stream()


def parse_json(raw: bytes | str, what: str = "Request body") -> Any:
    """The JSON document in `raw`; 400 naming `what` when it is not JSON, nests deeper than
    limits.MAX_JSON_DEPTH (checked on the raw text first: the parser recurses), or holds NaN,
    Infinity or a lone surrogate (naming the field: strict_json.py)."""
    return loads_strict(raw, what)


async def read_json(request: Request, svc: DaemonServices,
                    required: bool = False) -> dict[str, Any]:
    """The JSON object in the body; an empty body is `{}` (clients send Content-Type on bodiless
    POSTs), or with `required` 400 "Request body is empty" (as Trigger.dev answers on a route
    that takes a body). The body is JSON whatever its Content-Type says."""
    raw = await read_payload_body(request, svc)
    if not raw.strip():
        if required:
            raise BadRequestError("Request body is empty: send a JSON object, {} for a run "
                                  "without a payload")
        return {}
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise BadRequestError(f"Request body must be a JSON object, not {json_kind(value)}")
    return value


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words (not Python's `NoneType`, `list`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class SafeJSONResponse(JSONResponse):
    """Every JSON answer of the API. A value no request can store any more (NaN, a lone
    surrogate) may still be in an older database or come from a task's output: it is written
    as JavaScript writes it (null, U+FFFD) rather than failing the answer with a 500."""

    def render(self, content: Any) -> bytes:
        # Starlette's JSON (compact UTF-8, no NaN) with an encoder made once (strict_json.py)
        try:
            return dumps_answer(content).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return dumps_js(content).encode("utf-8")


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return SafeJSONResponse(body, status_code=status, headers=headers)


def require_key(request: Request, svc: DaemonServices,
                scope: str | list[str] | None = None) -> auth.Caller:
    """Check the request's key (the secret key, a project key or a JWT granting `scope`, or any
    scope of a list) and return who calls (api/auth.py)."""
    keys: auth.ProjectKeys = request.app.state.project_keys
    return auth.require_key(request, svc.secret_key, svc.engine.clock.now(), scope, keys,
                            svc.engine.projects.records)


def require_known_project(svc: DaemonServices, caller: auth.Caller) -> None:
    """A request that would store something (runs, a batch, a schedule, a waitpoint token, a
    packet) under a project the daemon does not serve (a typo in TRIGGER_LOCAL_PROJECT) is
    refused, 404 naming the known ones, before anything is stored: a run parked as
    PENDING_VERSION would wait for good, and nothing else would ever see the rest."""
    if caller.project is not None:
        require_known_ref(svc, caller.project)


_HEADER_HINT = "fix TRIGGER_LOCAL_PROJECT (the x-trigger-local-project header)"


def require_known_ref(svc: DaemonServices, ref: str, fix: str = _HEADER_HINT) -> None:
    """404 naming the known projects unless the daemon serves project `ref`; `fix`: what to
    correct when the ref is a typo."""
    projects = svc.engine.projects
    if ref in projects.records or ref in projects.current:
        return
    known = sorted(set(projects.records) | set(projects.current))
    raise ProjectNotFoundError(
        f"No project {ref!r} is registered (known: {', '.join(known) or 'none yet'}). Run "
        f"`trigger-local dev` in its directory, or {fix}.", known_projects=known)


def jwt_header(svc: DaemonServices, scopes: list[str], ttl_s: float = 3600) -> dict[str, str]:
    return {"x-trigger-jwt": auth.sign_jwt(svc.secret_key, scopes, svc.engine.clock.now(), ttl_s)}


def split_list(value: str | None) -> list[str]:
    """`a,b , c` → ["a", "b", "c"]; absent → []."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def int_param(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequestError(f"{name} must be a whole number, not {value!r}") from exc
    if not lo <= number <= hi:
        raise BadRequestError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


def cursor_param(value: str | None, name: str, prefix: str) -> str | None:
    """A page cursor is the id of a listed record; anything else would list an empty page that
    looks like "nothing matches"."""
    if not value:
        return None
    if not value.startswith(prefix) or len(value) > 64:
        raise BadRequestError(f"{name} must be the id of a listed record ({prefix}…), "
                              f"as `pagination` answered it, not {value[:64]!r}")
    return value


def float_param(value: str | None, name: str, default: float, hi: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise BadRequestError(f"{name} must be a number of seconds, not {value!r}") from exc
    if number != number or number < 0:  # NaN or negative
        raise BadRequestError(f"{name} must be a number of seconds, not {value!r}")
    return min(number, hi)


def base_url(request: Request, svc: DaemonServices) -> str:
    """Where third parties reach the daemon: its configured address, unless it binds every
    interface."""
    if svc.settings.host in ("0.0.0.0", "::", ""):
        return str(request.base_url).rstrip("/")
    return svc.settings.url


def body_doc(properties: dict[str, Any], required: list[str] | None = None,
             content_type: str = "application/json") -> dict[str, Any]:
    """`openapi_extra` describing a body the route reads itself (no pydantic model on the hot
    path)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"requestBody": {"required": bool(required),
                            "content": {content_type: {"schema": schema}}}}
