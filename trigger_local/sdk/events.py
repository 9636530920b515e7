"""Reading the daemon's server-sent event stream (`/api/v1/local/stream`).

`stream_events` (async) and `iter_events` (blocking) yield one dict per event
(`{"seq", "runId", "type", "at", "data", "logs"?}`) and reconnect by themselves with the last
seq they saw, so a daemon restart costs no events, and find a daemon started again on another
port (the clients' `follow_daemon`). `on_state(True/False)` tells the caller
whether the connection is live (the dashboard's header shows it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import error_from_response
from .client import ApiClient, SyncApiClient, _headers

if TYPE_CHECKING:
    import httpx

Json = dict[str, Any]
StateCallback = Callable[[bool], None]

#: the type of the event yielded each time the stream (re)opens
OPEN = "stream.open"

RETRY_S = 0.5
MAX_RETRY_S = 5.0
#: the daemon sends a keep-alive every 10 s; silence past this means the connection is dead
READ_TIMEOUT_S = 30.0


class SseParser:
    """Turns lines of a `text/event-stream` into (event type, data, id) triples."""

    def __init__(self) -> None:
        self.type: str = "message"
        self.data: list[str] = []
        self.id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        if line == "":
            if not self.data:
                self.type = "message"
                return None
            out = (self.type, "\n".join(self.data), self.id)
            self.type, self.data = "message", []
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.type = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.id = value
        return None


def stream_params(after: int | None, run_id: str | None, task: str | None, tag: str | None,
                  types: Iterable[str] | None, exclude: Iterable[str] | None = None,
                  project: str | None = None, session: bool = False) -> dict[str, str]:
    params = {"after": None if after is None else str(after), "run_id": run_id, "task": task,
              "tag": tag, "types": ",".join(types) if types else None,
              "exclude": ",".join(exclude) if exclude else None, "project": project,
              "session": "1" if session else None}
    return {k: v for k, v in params.items() if v}


def _event(parsed: tuple[str, str, str | None]) -> tuple[Json, int | None]:
    """The event to hand on and the cursor it moves us to; the daemon's `hello` becomes
    `{"type": "stream.open", "seq": cursor}` so callers know from where the stream is live."""
    type_, data, seq = parsed
    cursor = int(seq) if seq and seq.isdigit() else None
    if type_ == "hello":
        return {"type": OPEN, "seq": cursor}, cursor
    event: Json = json.loads(data)
    return event, cursor


def _raise_unless_transient(exc: httpx.HTTPStatusError) -> None:
    """A 5xx is a daemon restarting (retry); a 4xx will not get better by retrying."""
    status = exc.response.status_code
    if status < 500:
        raise error_from_response(status, {"error": f"The event stream answered {status} "
                                                    f"({exc.request.url.path})"}) from exc


class _Follower:
    """The state both loops below share: the cursor to resume from, the line parser of the
    current connection, the back-off, and telling the caller whether the stream is live."""

    def __init__(self, after: int | None, on_state: StateCallback | None,
                 filters: dict[str, Any]) -> None:
        self.after, self.on_state, self.filters = after, on_state, filters
        self.delay = RETRY_S
        self.parser = SseParser()

    def connect(self) -> dict[str, str]:
        """Query parameters for a new connection (from the last event seen)."""
        self.parser = SseParser()
        return stream_params(self.after, **self.filters)

    def take(self, line: str) -> Json | None:
        parsed = self.parser.feed(line)
        if parsed is None:
            return None
        event, cursor = _event(parsed)
        self.after = cursor if cursor is not None else self.after
        if event["type"] == OPEN:
            self.delay = RETRY_S
            if self.on_state is not None:
                self.on_state(True)
        return event

    def lost(self, exc: Exception | None) -> float:
        """The connection ended: re-raise what retrying cannot fix, else how long to back off."""
        import httpx
        if isinstance(exc, httpx.HTTPStatusError):
            _raise_unless_transient(exc)
        if self.on_state is not None:
            self.on_state(False)
        delay, self.delay = self.delay, min(self.delay * 2, MAX_RETRY_S)
        return delay


def _timeout() -> httpx.Timeout:
    import httpx
    return httpx.Timeout(10.0, read=READ_TIMEOUT_S)


async def stream_events(api: ApiClient, *, after: int | None = None, run_id: str | None = None,
                        task: str | None = None, tag: str | None = None,
                        types: Iterable[str] | None = None,
                        exclude: Iterable[str] | None = None, project: str | None = None,
                        on_state: StateCallback | None = None) -> AsyncIterator[Json]:
    """Events forever (from `after`, or from now on), reconnecting when the daemon goes away.
    `types` keeps only the given type prefixes, `exclude` drops them; `project` keeps one
    project's (comma-separated refs: several)."""
    import httpx  # here, not at import: a task process that follows no events never loads it
    follow = _Follower(after, on_state, {"run_id": run_id, "task": task, "tag": tag, "types": types,
                                         "exclude": exclude, "project": project})
    while True:
        endpoint, ended = api.endpoint, None
        try:
            async with httpx.AsyncClient(base_url=endpoint.base_url, headers=_headers(endpoint),
                                         timeout=_timeout()) as http, \
                    http.stream("GET", "/api/v1/local/stream", params=follow.connect()) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if (event := follow.take(line)) is not None:
                        yield event
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            ended = exc
        # back off before reconnecting to a daemon that is away
        await asyncio.sleep(follow.lost(ended))
        await api.follow_daemon()  # which may have come back on another port


def iter_events(api: SyncApiClient, *, after: int | None = None, run_id: str | None = None,
                task: str | None = None, tag: str | None = None, types: Iterable[str] | None = None,
                exclude: Iterable[str] | None = None, project: str | None = None,
                session: bool = False, on_state: StateCallback | None = None) -> Generator[Json]:
    """Blocking twin of `stream_events`. `session`: the stream is `trigger-local dev`'s session
    of `project`, which keeps that project's runs starting while it is open."""
    import httpx
    follow = _Follower(after, on_state, {"run_id": run_id, "task": task, "tag": tag, "types": types,
                                         "exclude": exclude, "project": project,
                                         "session": session})
    while True:
        endpoint, ended = api.endpoint, None
        try:
            with httpx.Client(base_url=endpoint.base_url, headers=_headers(endpoint),
                              timeout=_timeout()) as http, \
                    http.stream("GET", "/api/v1/local/stream", params=follow.connect()) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if (event := follow.take(line)) is not None:
                        yield event
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            ended = exc
        time.sleep(follow.lost(ended))  # back off before reconnecting to a daemon that is away
        api.follow_daemon()  # which may have come back on another port
