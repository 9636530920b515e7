"""The management API client: how app code, the CLI and the TUI reach the daemon.

`ApiClient` (async) and `SyncApiClient` (blocking) have the same methods. Each method is one
`Routes` builder (path, query, body, how to read the answer) run by that class's transport,
so the two cannot drift apart. Each keeps one keep-alive connection for the whole process.

The daemon is found through `TRIGGER_API_URL` + `TRIGGER_SECRET_KEY` (as Trigger.dev's own
SDK does), else through the running daemon's home: `$TRIGGER_LOCAL_HOME/daemon.json` and
`secret_key`. The lookup happens at the first request, so `configure()` and environment
changes made before then apply.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import httpx

from .. import packets
from ..config import DEFAULT_PORT, home_dir
from ..errors import ApiError, DaemonNotRunningError, NotFoundError, error_from_response

T = TypeVar("T")
P = ParamSpec("P")
Json = dict[str, Any]

API_VERSION = "2025-07-16"  # selects Trigger.dev's v2 status names
TIMEOUT_S = 30.0  # long-polls add their own wait on top


def _same(body: Any) -> Any:
    return body


@dataclass
class Call(Generic[T]):
    """One request to make and how to read its JSON answer."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    read: Callable[[Any], T] = _same
    wait_s: float = 0.0
    #: sent as x-trigger-request-idempotency-key, so a resent trigger creates no second run
    request_key: str | None = None
    #: tried instead when the daemon answers 404 (a queue name that may be a task's or custom)
    fallback: Call[T] | None = None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _queue_seg(name: str) -> str:
    # Trigger.dev's SDK turns "/" into %2F before encoding; the daemon undoes exactly that.
    return quote(name.replace("/", "%2F"), safe="")


def _csv(value: str | list[str] | tuple[str, ...] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_OPTION_NAMES = {"concurrency_key": "concurrencyKey", "idempotency_key": "idempotencyKey",
                 "idempotency_key_ttl": "idempotencyKeyTTL", "max_attempts": "maxAttempts",
                 "max_duration": "maxDuration", "payload_type": "payloadType"}


def api_options(options: dict[str, Any] | None) -> Json:
    """Trigger options in Trigger.dev's wire form from the SDK's snake_case (camelCase passes).

    `queue="name"` becomes `{"name": ...}`; a user idempotency key is hashed as the
    TypeScript SDK does outside a task, so both SDKs dedupe on the same key."""
    out: Json = {}
    for key, value in (options or {}).items():
        if value is not None:
            out[_OPTION_NAMES.get(key, key)] = value
    if isinstance(out.get("queue"), str):
        out["queue"] = {"name": out["queue"]}
    if isinstance(out.get("tags"), str):
        out["tags"] = [out["tags"]]
    user_key = out.get("idempotencyKey")
    if isinstance(user_key, list):
        user_key = "-".join(str(part) for part in user_key)
    if isinstance(user_key, str) and len(user_key) != 64:
        out["idempotencyKey"] = hashlib.sha256(user_key.encode()).hexdigest()
        out.setdefault("idempotencyKeyOptions", {"key": user_key, "scope": "global"})
    return out


def _queue_call(name: str, type: str | None, build: Callable[[str, str], Call[Json]]) -> Call[Json]:
    if type is None and name.startswith("queue_"):
        type = "id"
    elif type is None and name.startswith("task/"):
        name, type = name.removeprefix("task/"), "task"
    if type is not None:
        return build(_queue_seg(name), type)
    # A bare name is usually a task's queue (listed without its "task/" prefix); else custom.
    call = build(_queue_seg(name), "task")
    call.fallback = build(_queue_seg(name), "custom")
    return call


def _batch_answer(body: Json) -> Json:
    runs = [r["id"] if isinstance(r, dict) else r for r in body.get("runs", [])]
    return {"batchId": body.get("batchId") or body.get("id"), "runs": runs}


class Routes:
    """Builders for every management route, in Trigger.dev's paths and shapes."""

    @staticmethod
    def trigger(task_id: str, payload: str | None = None, payload_type: str = packets.JSON,
                options: dict[str, Any] | None = None) -> Call[Json]:
        """Trigger `task_id` with an encoded payload; answers {"id", "isCached"}."""
        body: Json = {"options": {**api_options(options), "payloadType": payload_type}}
        if payload is not None:
            body["payload"] = payload
        return Call("POST", f"/api/v1/tasks/{_seg(task_id)}/trigger", body=body,
                    request_key=str(uuid.uuid4()))

    @staticmethod
    def batch_trigger(items: list[Json]) -> Call[Json]:
        """Items {"task", "payload", "payloadType"?, "options"?}; answers {"batchId", "runs": [ids]}."""
        wire = [_drop_none({"task": i["task"], "payload": i.get("payload"),
                            "options": {**api_options(i.get("options")),
                                        "payloadType": i.get("payloadType") or i.get("payload_type")
                                        or packets.JSON}}) for i in items]
        return Call("POST", "/api/v1/tasks/batch", body={"items": wire}, read=_batch_answer,
                    request_key=str(uuid.uuid4()))

    @staticmethod
    def retrieve_run(run_id: str) -> Call[Json]:
        return Call("GET", f"/api/v3/runs/{_seg(run_id)}")

    @staticmethod
    def list_runs(*, status: str | list[str] | None = None, task: str | list[str] | None = None,
                  tag: str | list[str] | None = None, version: str | None = None,
                  batch: str | None = None, queue: str | None = None, period: str | None = None,
                  limit: int | None = None, after: str | None = None) -> Call[Json]:
        """A cursor page {"data": [runs], "pagination": {"next"?}}, newest first."""
        params = _drop_none({"filter[status]": _csv(status), "filter[taskIdentifier]": _csv(task),
                             "filter[tag]": _csv(tag), "filter[version]": version,
                             "filter[batch]": batch, "filter[queue]": queue,
                             "filter[createdAt][period]": period, "page[size]": limit,
                             "page[after]": after})
        return Call("GET", "/api/v1/runs", params=params)

    @staticmethod
    def cancel_run(run_id: str) -> Call[Json]:
        return Call("POST", f"/api/v2/runs/{_seg(run_id)}/cancel")

    @staticmethod
    def replay_run(run_id: str) -> Call[Json]:
        return Call("POST", f"/api/v1/runs/{_seg(run_id)}/replay")

    @staticmethod
    def reschedule_run(run_id: str, delay: str) -> Call[Json]:
        return Call("POST", f"/api/v1/runs/{_seg(run_id)}/reschedule", body={"delay": delay})

    @staticmethod
    def update_metadata(run_id: str, metadata: Json | None = None,
                        operations: list[Json] | None = None) -> Call[Json]:
        body = _drop_none({"metadata": metadata, "operations": operations})
        return Call("PUT", f"/api/v1/runs/{_seg(run_id)}/metadata", body=body)

    @staticmethod
    def run_logs(run_id: str, after: int | None = None) -> Call[Json]:
        """{"data": [log entries], "next": cursor to pass as `after`}."""
        return Call("GET", f"/api/v1/runs/{_seg(run_id)}/logs", params=_drop_none({"after": after}))

    @staticmethod
    def run_trace(run_id: str) -> Call[Json]:
        return Call("GET", f"/api/v1/runs/{_seg(run_id)}/trace")

    @staticmethod
    def events(after: int | None = None, wait_s: float = 0.0, run_id: str | None = None,
               limit: int | None = None) -> Call[Json]:
        """Events with a seq above `after`, waiting up to `wait_s` for the first one:
        {"data": [{"seq", "runId", "type", "at", "data"}], "next": seq to pass as `after`}."""
        params = _drop_none({"after": after, "wait_s": wait_s or None, "run_id": run_id, "limit": limit})
        return Call("GET", "/api/v1/local/events", params=params, wait_s=wait_s)

    @staticmethod
    def create_token(timeout: str | None = None, idempotency_key: str | None = None,
                     idempotency_key_ttl: str | None = None, tags: list[str] | None = None) -> Call[Json]:
        """{"id", "isCached", "url"}; token keys are sent raw (Trigger.dev does not hash them)."""
        body = _drop_none({"timeout": timeout, "idempotencyKey": idempotency_key,
                           "idempotencyKeyTTL": idempotency_key_ttl, "tags": tags})
        return Call("POST", "/api/v1/waitpoints/tokens", body=body)

    @staticmethod
    def complete_token(token_id: str, data: Any = None) -> Call[Json]:
        return Call("POST", f"/api/v1/waitpoints/tokens/{_seg(token_id)}/complete", body={"data": data})

    @staticmethod
    def timeout_token(token_id: str) -> Call[Json]:
        return Call("POST", f"/api/v1/waitpoints/tokens/{_seg(token_id)}/timeout")

    @staticmethod
    def retrieve_token(token_id: str) -> Call[Json]:
        return Call("GET", f"/api/v1/waitpoints/tokens/{_seg(token_id)}")

    @staticmethod
    def list_tokens(status: str | list[str] | None = None, tags: str | list[str] | None = None,
                    limit: int | None = None, after: str | None = None,
                    idempotency_key: str | None = None) -> Call[Json]:
        params = _drop_none({"filter[status]": _csv(status), "filter[tags]": _csv(tags),
                             "filter[idempotencyKey]": idempotency_key, "page[size]": limit, "page[after]": after})
        return Call("GET", "/api/v1/waitpoints/tokens", params=params)

    @staticmethod
    def list_queues(page: int = 1, per_page: int = 25) -> Call[Json]:
        return Call("GET", "/api/v1/queues", params={"page": page, "perPage": per_page})

    @staticmethod
    def retrieve_queue(name: str, type: str | None = None) -> Call[Json]:
        """`type`: "task" (name = task id), "custom", "id" (queue_…), or None to find out."""
        return _queue_call(name, type, lambda seg, t: Call("GET", f"/api/v1/queues/{seg}",
                                                           params={"type": t}))

    @staticmethod
    def pause_queue(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call("POST", f"/api/v1/queues/{seg}/pause",
                                                           body={"type": t, "action": "pause"}))

    @staticmethod
    def resume_queue(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call("POST", f"/api/v1/queues/{seg}/pause",
                                                           body={"type": t, "action": "resume"}))

    @staticmethod
    def override_queue_concurrency(name: str, limit: int, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call(
            "POST", f"/api/v1/queues/{seg}/concurrency/override", body={"type": t, "concurrencyLimit": limit}))

    @staticmethod
    def reset_queue_concurrency(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call("POST", f"/api/v1/queues/{seg}/concurrency/reset",
                                                           body={"type": t}))

    @staticmethod
    def register_version(project_dir: str, dirs: list[str], python: str | None = None,
                         env: dict[str, str] | None = None, image: str | None = None) -> Call[Json]:
        """Index the project and make it the current version; the answer lists its tasks.
        `image`: a deployed image; the version's tasks are indexed in it and run from it."""
        body = _drop_none({"projectDir": project_dir, "dirs": dirs, "python": python, "env": env,
                           "image": image})
        return Call("POST", "/api/v1/local/versions", body=body)

    @staticmethod
    def list_tasks() -> Call[Json]:
        return Call("GET", "/api/v1/local/tasks")

    @staticmethod
    def status() -> Call[Json]:
        return Call("GET", "/api/v1/local/status")

    @staticmethod
    def healthz() -> Call[Json]:
        return Call("GET", "/healthz")


# --- finding the daemon ---------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    base_url: str
    secret_key: str | None


_overrides: dict[str, str | None] = {"base_url": None, "secret_key": None}


def read_daemon_info(home: Path | None = None) -> Json | None:
    """The running daemon's `daemon.json`, or None when there is none (or it is unreadable)."""
    try:
        info = json.loads(((home or home_dir()) / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def read_secret_key(home: Path | None = None) -> str | None:
    try:
        return ((home or home_dir()) / "secret_key").read_text().strip() or None
    except OSError:
        return None


def resolve_endpoint() -> Endpoint:
    """configure() first, then TRIGGER_API_URL / TRIGGER_SECRET_KEY, then the daemon home."""
    url = _overrides["base_url"] or os.environ.get("TRIGGER_API_URL")
    key = _overrides["secret_key"] or os.environ.get("TRIGGER_SECRET_KEY")
    if not url:
        url = str((read_daemon_info() or {}).get("url") or f"http://127.0.0.1:{DEFAULT_PORT}")
    # The home's key is the right one whenever the daemon is ours, even if only the URL was set.
    return Endpoint(url.rstrip("/"), key or read_secret_key())


# --- the transports -------------------------------------------------------------------------

def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-trigger-api-version": API_VERSION,
               "x-trigger-source": "trigger-local-python"}
    if endpoint.secret_key:
        headers["authorization"] = f"Bearer {endpoint.secret_key}"
    return headers


def _request_args(call: Call[Any]) -> Json:
    args: Json = {"params": call.params or None, "timeout": TIMEOUT_S + call.wait_s}
    if call.body is not None:
        args["content"] = json.dumps(call.body)
    if call.request_key:
        args["headers"] = {"x-trigger-request-idempotency-key": call.request_key}
    return args


def _answer(call: Call[T], response: httpx.Response) -> T:
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise error_from_response(response.status_code, body)
    return call.read(body)


def _transport_error(exc: httpx.TransportError, url: str) -> Exception:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DaemonNotRunningError(
            f"The trigger-local daemon is not running at {url}. "
            "Start it with `trigger-local up` (or `trigger-local dev` in your project).")
    return ApiError(f"Lost the connection to the daemon at {url} ({type(exc).__name__}: {exc}). "
                    "Check it with `trigger-local status` and try again.")


def _aio(build: Callable[P, Call[T]]) -> Callable[Concatenate[ApiClient, P], Coroutine[Any, Any, T]]:
    async def method(self: ApiClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    method.__name__, method.__doc__ = build.__name__, build.__doc__
    return method


def _blocking(build: Callable[P, Call[T]]) -> Callable[Concatenate[SyncApiClient, P], T]:
    def method(self: SyncApiClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    method.__name__, method.__doc__ = build.__name__, build.__doc__
    return method


class _Base:
    def __init__(self, base_url: str | None = None, secret_key: str | None = None) -> None:
        self._fixed = Endpoint(base_url.rstrip("/"), secret_key) if base_url else None
        self._endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = self._fixed or resolve_endpoint()
        return self._endpoint


class ApiClient(_Base):
    """Async client of the daemon's management API.

    Raises the daemon's own errors (`NotFoundError`, `ValidationError`, ...) and
    `DaemonNotRunningError` when nothing listens at the address."""

    def __init__(self, base_url: str | None = None, secret_key: str | None = None) -> None:
        super().__init__(base_url, secret_key)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        # An AsyncClient's connections belong to one event loop: a later asyncio.run() needs
        # a new client (the old one's sockets went away with its loop).
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(base_url=self.endpoint.base_url,
                                           headers=_headers(self.endpoint))
            self._loop = loop
        return self._http

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._client().request(call.method, call.path, **_request_args(call))
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.endpoint.base_url) from exc
        try:
            return _answer(call, response)
        except NotFoundError:
            if call.fallback is None:
                raise
            return await self.send(call.fallback)

    async def aclose(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http, self._loop, self._endpoint = None, None, None

    trigger = _aio(Routes.trigger)
    batch_trigger = _aio(Routes.batch_trigger)
    retrieve_run = _aio(Routes.retrieve_run)
    list_runs = _aio(Routes.list_runs)
    cancel_run = _aio(Routes.cancel_run)
    replay_run = _aio(Routes.replay_run)
    reschedule_run = _aio(Routes.reschedule_run)
    update_metadata = _aio(Routes.update_metadata)
    run_logs = _aio(Routes.run_logs)
    run_trace = _aio(Routes.run_trace)
    events = _aio(Routes.events)
    create_token = _aio(Routes.create_token)
    complete_token = _aio(Routes.complete_token)
    timeout_token = _aio(Routes.timeout_token)
    retrieve_token = _aio(Routes.retrieve_token)
    list_tokens = _aio(Routes.list_tokens)
    list_queues = _aio(Routes.list_queues)
    retrieve_queue = _aio(Routes.retrieve_queue)
    pause_queue = _aio(Routes.pause_queue)
    resume_queue = _aio(Routes.resume_queue)
    override_queue_concurrency = _aio(Routes.override_queue_concurrency)
    reset_queue_concurrency = _aio(Routes.reset_queue_concurrency)
    register_version = _aio(Routes.register_version)
    list_tasks = _aio(Routes.list_tasks)
    status = _aio(Routes.status)
    healthz = _aio(Routes.healthz)


class SyncApiClient(_Base):
    """Blocking twin of `ApiClient`, for scripts, Django views and the CLI."""

    def __init__(self, base_url: str | None = None, secret_key: str | None = None) -> None:
        super().__init__(base_url, secret_key)
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(base_url=self.endpoint.base_url,
                                          headers=_headers(self.endpoint))
            return self._http

    def send(self, call: Call[T]) -> T:
        try:
            response = self._client().request(call.method, call.path, **_request_args(call))
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.endpoint.base_url) from exc
        try:
            return _answer(call, response)
        except NotFoundError:
            if call.fallback is None:
                raise
            return self.send(call.fallback)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http, self._endpoint = None, None

    trigger = _blocking(Routes.trigger)
    batch_trigger = _blocking(Routes.batch_trigger)
    retrieve_run = _blocking(Routes.retrieve_run)
    list_runs = _blocking(Routes.list_runs)
    cancel_run = _blocking(Routes.cancel_run)
    replay_run = _blocking(Routes.replay_run)
    reschedule_run = _blocking(Routes.reschedule_run)
    update_metadata = _blocking(Routes.update_metadata)
    run_logs = _blocking(Routes.run_logs)
    run_trace = _blocking(Routes.run_trace)
    events = _blocking(Routes.events)
    create_token = _blocking(Routes.create_token)
    complete_token = _blocking(Routes.complete_token)
    timeout_token = _blocking(Routes.timeout_token)
    retrieve_token = _blocking(Routes.retrieve_token)
    list_tokens = _blocking(Routes.list_tokens)
    list_queues = _blocking(Routes.list_queues)
    retrieve_queue = _blocking(Routes.retrieve_queue)
    pause_queue = _blocking(Routes.pause_queue)
    resume_queue = _blocking(Routes.resume_queue)
    override_queue_concurrency = _blocking(Routes.override_queue_concurrency)
    reset_queue_concurrency = _blocking(Routes.reset_queue_concurrency)
    register_version = _blocking(Routes.register_version)
    list_tasks = _blocking(Routes.list_tasks)
    status = _blocking(Routes.status)
    healthz = _blocking(Routes.healthz)


# --- process-wide instances -----------------------------------------------------------------

_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def get_client() -> ApiClient:
    """The process-wide async client (one keep-alive connection per event loop)."""
    with _shared_lock:
        client = _shared.setdefault("async", ApiClient())
    assert isinstance(client, ApiClient)
    return client


def get_sync_client() -> SyncApiClient:
    """The process-wide blocking client."""
    with _shared_lock:
        client = _shared.setdefault("sync", SyncApiClient())
    assert isinstance(client, SyncApiClient)
    return client


def configure(base_url: str | None = None, secret_key: str | None = None) -> None:
    """Point the process-wide clients at a daemon, like Trigger.dev's `configure`.

    None leaves that value to TRIGGER_API_URL / TRIGGER_SECRET_KEY and the daemon home."""
    with _shared_lock:
        _overrides["base_url"], _overrides["secret_key"] = base_url, secret_key
        sync = _shared.pop("sync", None)
        _shared.pop("async", None)
    if sync is not None:
        sync.close()
