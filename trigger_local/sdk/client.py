"""The management API client: how app code, the CLI and the TUI reach the daemon.

`ApiClient` (async) and `SyncApiClient` (blocking) have the same methods. Each method is one
`Routes` builder (path, query, body, how to read the answer) run by that class's transport,
so the two cannot drift apart. Each keeps one keep-alive connection for the whole process.

The daemon is found through `TRIGGER_API_URL` + `TRIGGER_SECRET_KEY` (as Trigger.dev's own
SDK does), else through the running daemon's home: `$TRIGGER_LOCAL_HOME/daemon.json` and
`secret_key`. The project a request means (the daemon serves several) is `TRIGGER_LOCAL_PROJECT`,
else the `project` of the trigger.toml in the current directory or a parent; it goes in the
`x-trigger-local-project` header. The lookup happens at the first request, so `configure()` and
environment changes made before then apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate

from ..config import DEFAULT_PORT, find_project_root, home_dir, load_project
from ..errors import NotFoundError, ValidationError, error_from_response
from ..projects import PROJECT_ENV, PROJECT_HEADER, check_project_ref
from .daemon_url import FROM_ENV, FROM_HOME, GIVEN, check_daemon_url, transport_error
from .routes import (  # noqa: F401 - re-exported
    _OPTION_NAMES,
    API_VERSION,
    TIMEOUT_S,
    Call,
    Json,
    P,
    Routes,
    T,
    _batch_answer,
    _csv,
    _drop_none,
    _queue_call,
    _queue_seg,
    _same,
    _seg,
    api_options,
)
from .unavailable import Pauses, unavailable

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    secret_key: str | None
    #: the project requests mean (None: the daemon finds the one project that has a task)
    project: str | None = None


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


def current_project(derived: bool = True) -> str | None:
    """TRIGGER_LOCAL_PROJECT, else the ref of the project around the current directory: the one
    its config names or, with `derived`, the one its directory's name derives."""
    named = os.environ.get(PROJECT_ENV)
    if named:
        return check_project_ref(named, PROJECT_ENV)
    try:
        root = find_project_root(Path.cwd())
        config = load_project(root) if root is not None else None
    except (OSError, ValidationError):
        return None  # a broken trigger.toml is `dev`'s to report; requests name no project
    return config.project if config is not None and (config.named or derived) else None


def default_url() -> str:
    """Where a daemon started here with no flags would listen: the TRIGGER_LOCAL_HOST and
    TRIGGER_LOCAL_PORT settings (as `up` and `dev` read them), else 127.0.0.1:8030."""
    host = os.environ.get("TRIGGER_LOCAL_HOST") or "127.0.0.1"
    if ":" in host and not host.startswith("["):  # an IPv6 address, as `up` takes it
        host = f"[{host}]"
    port = os.environ.get("TRIGGER_LOCAL_PORT", "").strip() or str(DEFAULT_PORT)
    if not port.isdigit() or int(port) > 65535:  # not an httpx traceback later
        raise ValidationError(f"TRIGGER_LOCAL_PORT={port!r} is not a port: set it to the "
                              "daemon's port, a number up to 65535, or unset it for "
                              f"{DEFAULT_PORT}.")
    return f"http://{host}:{port}"


def resolve_endpoint() -> Endpoint:
    """configure() first, then TRIGGER_API_URL / TRIGGER_SECRET_KEY, then the daemon home."""
    url = _overrides["base_url"] or os.environ.get("TRIGGER_API_URL")
    source = GIVEN if _overrides["base_url"] else FROM_ENV
    key = _overrides["secret_key"] or os.environ.get("TRIGGER_SECRET_KEY")
    if not url:
        url = str((read_daemon_info() or {}).get("url") or default_url())
        source = FROM_HOME
    check_daemon_url(url, source)
    # The home's key is the right one whenever the daemon is ours, even if only the URL was set.
    home_key = read_secret_key()
    # A ref derived from the directory's name is named for the daemon's key only: another key
    # (a project's) names its project itself, and the derived ref would be another's (403).
    own = key is None or key == home_key
    return Endpoint(url.rstrip("/"), key or home_key, current_project(derived=own))


# --- the transports -------------------------------------------------------------------------

def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-trigger-api-version": API_VERSION,
               "x-trigger-source": "trigger-local-python"}
    if endpoint.secret_key:
        headers["authorization"] = f"Bearer {endpoint.secret_key}"
    if endpoint.project:
        headers[PROJECT_HEADER] = endpoint.project
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


def _aio(build: Callable[P, Call[T]]) -> Callable[Concatenate[ApiClient, P],
                                                  Coroutine[Any, Any, T]]:
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

    def _moved(self) -> Endpoint | None:
        """The address in the home's daemon.json if not the one in use (sdk/events.py, after a
        lost stream: a daemon started again on another port); None for a given one (it stays)."""
        with contextlib.suppress(ValidationError):
            found = None if self._fixed or not read_daemon_info() else resolve_endpoint()
            return None if found == self._endpoint else found
        return None


class ApiClient(_Base):
    """Async client of the daemon's management API.

    Raises the daemon's own errors (`NotFoundError`, `ValidationError`, ...) and
    `DaemonNotRunningError` when nothing listens at the address."""

    def __init__(self, base_url: str | None = None, secret_key: str | None = None) -> None:
        super().__init__(base_url, secret_key)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        import httpx
        loop = asyncio.get_running_loop()
        # An AsyncClient's connections belong to one event loop: a later asyncio.run() needs
        # a new client (the old one's sockets went away with its loop).
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(base_url=self.endpoint.base_url,
                                           headers=_headers(self.endpoint))
            self._loop = loop
        return self._http

    async def send(self, call: Call[T]) -> T:
        import httpx
        pauses = Pauses()
        while True:
            try:
                response = await self._client().request(call.method, call.path,
                                                        **_request_args(call))
            except httpx.TransportError as exc:
                raise transport_error(exc, self.endpoint.base_url) from exc
            if not unavailable(response) or (pause := pauses.next()) is None:
                break
            await asyncio.sleep(pause)
        try:
            return _answer(call, response)
        except NotFoundError:
            if call.fallback is None:
                raise
            return await self.send(call.fallback)

    async def aclose(self) -> None:  # left first: a call made while it closes opens another
        old, loop = self._http, self._loop
        self._http, self._loop, self._endpoint = None, None, None
        if old is not None and loop is asyncio.get_running_loop():
            await old.aclose()

    async def follow_daemon(self) -> None:
        """Go to the daemon at the home's address if it moved (`_moved`)."""
        if (found := self._moved()) is not None:
            await self.aclose()
            self._endpoint = found

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
    run_streams = _aio(Routes.run_streams)
    stream_chunks = _aio(Routes.stream_chunks)
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
    list_projects = _aio(Routes.list_projects)
    healthz = _aio(Routes.healthz)


class SyncApiClient(_Base):
    """Blocking twin of `ApiClient`, for scripts, Django views and the CLI."""

    def __init__(self, base_url: str | None = None, secret_key: str | None = None) -> None:
        super().__init__(base_url, secret_key)
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        import httpx
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(base_url=self.endpoint.base_url,
                                          headers=_headers(self.endpoint))
            return self._http

    def send(self, call: Call[T]) -> T:
        import httpx
        pauses = Pauses()
        while True:
            try:
                response = self._client().request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                raise transport_error(exc, self.endpoint.base_url) from exc
            if not unavailable(response) or (pause := pauses.next()) is None:
                break
            time.sleep(pause)
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

    def follow_daemon(self) -> None:
        """Go to the daemon at the home's address if it moved (`_moved`)."""
        found = self._moved()
        with self._lock:
            if found is None or found == self._endpoint:
                return
            old, self._http, self._endpoint = self._http, None, found
        if old is not None:
            old.close()

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
    run_streams = _blocking(Routes.run_streams)
    stream_chunks = _blocking(Routes.stream_chunks)
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
    list_projects = _blocking(Routes.list_projects)
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


def forget_clients() -> None:
    """Drop the process-wide clients (keeping what `configure` set): the next call finds the
    daemon again (a task process whose daemon moved, runtime/__main__.py)."""
    configure(_overrides["base_url"], _overrides["secret_key"])


def configure(base_url: str | None = None, secret_key: str | None = None) -> None:
    """Point the process-wide clients at a daemon, like Trigger.dev's `configure`.

    None leaves that value to TRIGGER_API_URL / TRIGGER_SECRET_KEY and the daemon home."""
    with _shared_lock:
        _overrides["base_url"], _overrides["secret_key"] = base_url, secret_key
        sync = _shared.pop("sync", None)
        _shared.pop("async", None)
    if sync is not None:
        sync.close()
