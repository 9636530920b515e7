"""Following runs and streams from app code: the HTTP side of `runs.subscribe_to_*`,
`streams.read` and `handle.logs()` (docs/realtime.md).

Subscriptions speak the daemon's realtime shape routes (api/realtime.py) with `format=run`, so
each row is the dict `runs.retrieve` answers. A `Subscription` remembers the offset of the
last answer it has yielded all rows of: `Subscription(..., offset=old.offset)` picks up after
it, with nothing missed and nothing twice. Streams are read as server-sent events from any
index; logs come from the daemon's event stream (sdk/events.py).

Every iterator here is async; `blocking(...)` turns one into a plain iterator for scripts (it
runs the async one on a private event loop in the calling thread)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from ..errors import error_from_response
from ..statuses import FINAL_STATUSES
from .client import ApiClient, _headers, get_client
from .events import stream_events

if TYPE_CHECKING:
    import httpx

Json = dict[str, Any]
T = TypeVar("T")
#: the daemon holds a live request up to `realtime_hold_s` (20 s by default)
POLL_TIMEOUT_S = 90.0
RETRIES = 8


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = {"error": response.text[:500]}
        raise error_from_response(response.status_code, body)


class Subscription:
    """An async iterator of run dicts: each change of the shape's runs once, in order.
    `offset` is where a new `Subscription` resumes from (`None`: the start, a snapshot): it
    moves past an answer when that answer's last row is handed out."""

    def __init__(self, path: str, params: dict[str, str] | None = None, *,
                 stop_on_completion: bool = False, offset: str | None = None,
                 client: ApiClient | None = None) -> None:
        self.path, self.params = path, dict(params or {})
        self.stop_on_completion = stop_on_completion
        self.offset, self.handle = offset, None
        self._api = client or get_client()

    def __aiter__(self) -> AsyncIterator[Json]:
        return self._rows()

    def _query(self) -> dict[str, str]:
        query = {**self.params, "format": "run", "offset": self.offset or "-1"}
        if self.offset is not None:
            # handles are stateless (the path names the shape): any handle goes on from offset
            query["handle"] = self.handle or "resume"
            query["live"] = "true"
        return query

    async def _poll(self, http: httpx.AsyncClient) -> tuple[list[Json], str]:
        """The rows of the next answer and its offset. A lost connection or a 5xx (a daemon
        restarting) is retried for about ten seconds."""
        import httpx
        for attempt in range(RETRIES):
            try:
                response = await http.get(self.path, params=self._query())
            except httpx.TransportError:
                await asyncio.sleep(min(0.1 * 2 ** attempt, 3.0))
                continue
            if response.status_code >= 500:
                await asyncio.sleep(min(0.1 * 2 ** attempt, 3.0))
                continue
            _raise_for(response)
            self.handle = response.headers.get("electric-handle") or self.handle
            rows = [m["value"] for m in response.json() if "value" in m]
            return rows, response.headers["electric-offset"]
        raise ConnectionError(f"Lost the daemon while following {self.path}")

    async def _rows(self) -> AsyncIterator[Json]:
        import httpx  # here, not at import: a task process that subscribes to none never loads it
        endpoint = self._api.endpoint
        async with httpx.AsyncClient(base_url=endpoint.base_url, headers=_headers(endpoint),
                                     timeout=httpx.Timeout(10.0, read=POLL_TIMEOUT_S)) as http:
            while True:
                rows, offset = await self._poll(http)
                if not rows:
                    self.offset = offset
                for number, row in enumerate(rows, start=1):
                    if number == len(rows):  # the consumer may stop at it: it is past the answer
                        self.offset = offset
                    yield row
                    if self.stop_on_completion and row.get("status") in FINAL_STATUSES:
                        return


async def read_stream(run_id: str, key: str = "default", *, start_index: int = 0,
                      timeout_s: float = 60.0, client: ApiClient | None = None,
                      ) -> AsyncIterator[Any]:
    """The chunks of stream `key` of a run from `start_index` on, live, until the run has
    finished and every chunk was read (or `timeout_s` pass without a chunk). A dropped
    connection resumes after the last chunk read."""
    import httpx
    api = client or get_client()
    endpoint, after, failures = api.endpoint, start_index - 1, 0
    async with httpx.AsyncClient(base_url=endpoint.base_url, headers=_headers(endpoint),
                                 timeout=httpx.Timeout(10.0, read=timeout_s + 30)) as http:
        while True:
            headers = {"accept": "text/event-stream", "timeout-seconds": f"{timeout_s:g}"}
            if after >= 0:
                headers["last-event-id"] = str(after)
            try:
                async with http.stream("GET", f"/realtime/v1/streams/{quote(run_id, safe='')}/"
                                       f"{quote(key, safe='')}",
                                       headers=headers) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response)
                    async for index, data in _sse_chunks(response):
                        after = index if index is not None else after + 1
                        yield _chunk(data)
                return
            except httpx.TransportError:
                failures += 1
                if failures > RETRIES:
                    raise
                await asyncio.sleep(min(0.1 * 2 ** failures, 3.0))


def _chunk(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data  # a line another writer sent that is not JSON: as it came (as the JS SDK)


async def _sse_chunks(response: httpx.Response) -> AsyncIterator[tuple[int | None, str]]:
    """(id, data) of each event of a stream reader's response. Split by hand, not line by line
    (SseParser): at tens of thousands of chunks a second the per-line cost shows."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        *events, buffer = buffer.replace("\r\n", "\n").split("\n\n")
        for event in events:
            index, data = None, []
            for line in event.split("\n"):
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("id:"):
                    value = line[3:].strip()
                    index = int(value) if value.isdigit() else None
            if data:
                yield index, "\n".join(data)


async def follow_logs(run_id: str, client: ApiClient | None = None) -> AsyncIterator[Json]:
    """The run's log lines (dicts: at, level, message, attributes, ...) from its first one,
    live, until the run has finished."""
    events = stream_events(client or get_client(), after=0, run_id=run_id, types=["run."])
    async for event in events:
        for line in event.get("logs") or []:
            if line.get("kind") == "log":
                yield line
        status = (event.get("data") or {}).get("status")
        if event.get("type") != "run.logs" and status in FINAL_STATUSES:
            return


def blocking(iterator: AsyncIterator[T]) -> Iterator[T]:
    """A plain iterator over an async one, for code with no event loop running."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(iterator.__anext__())
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            loop.run_until_complete(aclose())
        loop.close()
