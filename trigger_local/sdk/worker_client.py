"""The task process's HTTP client for the daemon's worker routes (`/engine/v1/...`).

One client per process, its connection kept alive across runs so a warm process pays no
connection setup per run. Blocking SDK calls made from a sync task's thread reach it through
`RunState.block_on` (the runtime's event loop owns it).

Failure rules (docs/worker-protocol.md):
- a connection error or a 502/503/504 is retried with backoff (≤ 1 s) for up to
  `TRIGGER_LOCAL_ORPHAN_TIMEOUT_S` (default 300 s): the daemon may be restarting; so is a 507
  (the daemon's disk is full: nothing was written, and a completion must not be lost); after that
  `DaemonUnreachableError` is raised and the process exits;
- 409 means the attempt is no longer current: `AttemptGone` is raised and the run is dropped;
- any other 4xx/5xx is raised as the `trigger_local.errors` class its code names.

The bytes travel through a `Transport`: `HttpxTransport` here (any HTTP server, the
default), or the runtime's leaner keep-alive transport (`trigger_local.runtime.http11`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from .. import packets
from ..errors import AttemptGone, DaemonUnreachableError, error_from_response
from ..strict_json import dumps_js

if TYPE_CHECKING:
    import httpx

_RETRY_STATUSES = frozenset({502, 503, 504, 507})
_MAX_BACKOFF_S = 1.0
#: what a transport may raise when the daemon cannot be reached (retried; HttpxTransport
#: raises httpx's transport errors as ConnectionError, so that httpx is loaded only with it)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, TimeoutError)


class Transport(Protocol):
    """Sends one HTTP request and returns (status, body bytes). Raises one of
    `CONNECTION_ERRORS` when the request may not have reached the daemon."""

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]: ...

    async def reset(self) -> None:
        """Close idle connections (before a checkpoint)."""

    async def aclose(self) -> None: ...


class HttpxTransport:
    """The portable transport, on one `httpx.AsyncClient`."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self._inner = base_url, transport
        self._http = self._new()

    def _new(self) -> httpx.AsyncClient:
        import httpx
        # TCP_NODELAY: headers and body go out in separate writes, and Nagle plus delayed
        # ACKs would add ~40 ms to each request
        inner = self._inner or httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        return httpx.AsyncClient(base_url=self.base_url, transport=inner,
                                 limits=httpx.Limits(max_keepalive_connections=4))

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]:
        import httpx
        try:
            resp = await self._http.request(method, path, content=body, headers=headers,
                                            timeout=httpx.Timeout(timeout_s, connect=5.0))
        except httpx.TransportError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return resp.status_code, resp.content

    async def reset(self) -> None:
        old, self._http = self._http, self._new()
        await old.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()


def orphan_timeout_s() -> float:
    try:
        return float(os.environ.get("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S", "300"))
    except ValueError:
        return 300.0


def jsonable(obj: Any) -> Any:
    # log attributes and metadata may hold anything: never fail a run over a repr
    try:
        return packets._default(obj)
    except TypeError:
        return repr(obj)


class WaitReader(Protocol):
    """A shared process's channel (runtime/channel.py), as the SDK's waits and run calls use
    it."""

    async def read_wait(self, run_id: str, token: str, waitpoint_id: str) -> dict[str, Any]: ...

    async def wait(self, run_id: str, attempt: int, token: str,
                   body: dict[str, Any]) -> dict[str, Any]: ...

    async def call(self, name: str, run_id: str, attempt: int, token: str,
                   body: dict[str, Any]) -> dict[str, Any]: ...

    async def timer_due(self, run_id: str, attempt: int, token: str,
                        waitpoint_id: str) -> bool: ...


class WorkerClient:
    """Async client for the worker routes. Methods return the decoded JSON answer.

    Contract: a request either returns the daemon's 2xx answer, or raises `AttemptGone` (409),
    `DaemonUnreachableError` (no daemon for the orphan timeout), or a `TriggerLocalError`.
    """

    def __init__(self, base_url: str, *, orphan_timeout: float | None = None,
                 transport: Transport | None = None,
                 find_daemon: Callable[[], str | None] | None = None,
                 transport_for: Callable[[str], Transport] = HttpxTransport) -> None:
        self.base_url = base_url.rstrip("/")
        self.orphan_timeout_s = orphan_timeout_s() if orphan_timeout is None else orphan_timeout
        self.transport: Transport = transport or transport_for(self.base_url)
        #: where the daemon listens now (its home's daemon.json), asked when the one at
        #: `base_url` refuses connections: a daemon restarted on another port is found there
        self.find_daemon, self.transport_for = find_daemon, transport_for
        #: a shared process's channel while it has one (runtime/worker.py): its runs' waits
        #: go there (sdk/waits.py)
        self.channel: WaitReader | None = None

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def drop_connections(self) -> None:
        """Close kept-alive connections: a process about to be checkpointed must hold no
        socket (ARCHITECTURE §4)."""
        await self.transport.reset()

    async def request(self, method: str, path: str, *, token: str, body: Any = None,
                      params: dict[str, Any] | None = None, read_timeout_s: float | None = None,
                      close: bool = False, ndjson: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}",
                   # reused across retries so a daemon can drop a replayed request
                   "x-trigger-request-idempotency-key": uuid.uuid4().hex}
        if close:
            headers["Connection"] = "close"
        content = None
        if ndjson is not None:  # lines of JSON, sent as they are (stream chunks)
            headers["Content-Type"] = "application/x-ndjson"
            content = ndjson
        elif body is not None:
            headers["Content-Type"] = "application/json"
            # NaN, Infinity, lone surrogates: written as JavaScript writes them (strict_json.py)
            content = dumps_js(body, default=jsonable).encode()
        if params:
            path = f"{path}?{urlencode(params)}"
        timeout_s = max(30.0, (read_timeout_s or 0) + 10.0)
        deadline: float | None = None
        backoff = 0.05
        while True:
            try:
                status, data = await self.transport.send(method, path, headers, content, timeout_s)
            except CONNECTION_ERRORS as exc:
                if await self._follow_daemon():
                    continue  # at once: the daemon that answers now is elsewhere
                deadline = self._check_deadline(deadline, exc)
            else:
                if status not in _RETRY_STATUSES:
                    return _answer(status, data)
                deadline = self._check_deadline(deadline, f"HTTP {status}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _follow_daemon(self) -> bool:
        """Point the client at the url the home's daemon.json names, when it is another one
        (the daemon was restarted on another port); True when it moved."""
        url = self.find_daemon() if self.find_daemon is not None else None
        if not url or url.rstrip("/") == self.base_url:
            return False
        old, self.base_url = self.transport, url.rstrip("/")
        self.transport = self.transport_for(self.base_url)
        await old.aclose()
        print(f"trigger-local: the daemon moved to {self.base_url}", file=sys.stderr)
        return True

    def _check_deadline(self, deadline: float | None, cause: object) -> float:
        now = time.monotonic()
        if deadline is None:
            return now + self.orphan_timeout_s
        if now >= deadline:
            raise DaemonUnreachableError(
                f"daemon at {self.base_url} unreachable for {self.orphan_timeout_s:.0f}s "
                f"({cause!r})")
        return deadline

    # -- routes ---------------------------------------------------------------------------
    async def next_assignment(self, worker_id: str, token: str, wait_s: float = 20,
                              ack: int | None = None) -> dict[str, Any]:
        """`ack`: the number of the last message this process got (a shared process)."""
        params: dict[str, Any] = {"wait_s": wait_s}
        if ack is not None:
            params["ack"] = ack
        answer: dict[str, Any] = await self.request(
            "GET", f"/engine/v1/workers/{worker_id}/next", token=token, params=params,
            read_timeout_s=wait_s)
        return answer

    async def run_call(self, method: str, run_id: str, route: str, token: str,
                       body: Any = None, **kw: Any) -> Any:
        return await self.request(method, f"/engine/v1/runs/{run_id}/{route}", token=token,
                                  body=body, **kw)


def _answer(status: int, data: bytes) -> Any:
    try:
        body: Any = json.loads(data) if data else {}
    except ValueError:
        body = {"error": data.decode(errors="replace")[:500]}
    if status == 409:
        raise AttemptGone(str(body.get("error") if isinstance(body, dict) else body))
    if status >= 400:
        raise error_from_response(status, body)
    return body


def daemon_url_in(info: Path) -> str | None:
    """The url a home's daemon.json names (None while there is none, or it is half-written)."""
    try:
        url = json.loads(info.read_text()).get("url")
    except (OSError, ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
