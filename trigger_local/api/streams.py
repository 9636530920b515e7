"""Realtime streams over HTTP: Trigger.dev's v1 streams protocol (what @trigger.dev/sdk 4.8.3
writes and reads, docs/realtime.md) and the task runtime's batched writes.

    PUT  /realtime/v1/streams/{runId}/{target}/{key}         create → {"version": "v1"}
    POST /realtime/v1/streams/{runId}/{target}/{key}         NDJSON body, one chunk a line
    HEAD /realtime/v1/streams/{runId}/{target}/{key}         X-Last-Chunk-Index of X-Client-Id
    POST /realtime/v1/streams/{runId}/{target}/{key}/append  the raw body is one string chunk
    GET  /realtime/v1/streams/{runId}/{key}                  server-sent events from any index
    GET  /api/v1/local/runs/{runId}/streams[/{key}]          ours: keys; a page of chunks
    POST /engine/v1/runs/{runId}/streams/{key}               {"chunks": [...]} (run token)

Chunks are stored as JSON text in order (store/stream_areas.py). A reader gets `id: <index>`
and `data: <json>` per chunk, a `: ping` comment every 10 s without data, and the end of the
response once the run has finished and everything was sent (no ingest of the key still open),
or after `Timeout-Seconds` (default 60) without a new chunk."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import limits
from ..engine.events import Draining, Event, RunStatusChanged, StreamAppended
from ..errors import BadRequestError, NotFoundError, PayloadTooLargeError, ValidationError
from .common import (
    body_chunks,
    body_limit,
    int_param,
    ok,
    read_body,
    read_json,
    require_key,
    services_of,
)
from .errors import JsonErrorRoute
from .realtime import CORS
from .services import DaemonServices
from .worker import run_auth

router = APIRouter(route_class=JsonErrorRoute, tags=["realtime"])

_KEY = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_TARGETS = ("self", "parent", "root")
PING_S = 10.0
PAGE = 1000
#: (run, key) -> ingest requests open now: a reader does not end while one is
_open_ingests: Counter[tuple[str, str]] = Counter()
#: (run, key) -> the wake-ups of its readers, set when an ingest of it ends
_readers: dict[tuple[str, str], set[asyncio.Event]] = {}


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise BadRequestError(f"Invalid stream key {key[:130]!r}: use 1-128 letters, digits or "
                              "_ . : @ -")
    return key


def _check_target(target: str) -> None:
    if target not in _TARGETS:
        raise BadRequestError(f"Invalid stream target {target[:64]!r}: use self, parent or root")


def _chunk_limit(svc: DaemonServices) -> int:
    return svc.settings.payload_limit_bytes


@router.put("/realtime/v1/streams/{run_id}/{target}/{key}", status_code=202)
async def create_stream(run_id: str, target: str, key: str, request: Request) -> Response:
    svc = services_of(request)
    require_key(request, svc)
    _check_target(target)
    await svc.engine.append_stream(run_id, check_key(key), [])
    return ok({"version": "v1"}, status=202)


def _lines(buffer: bytearray, limit: int) -> list[str]:
    """The complete lines at the front of `buffer` (taken out of it), blank ones dropped."""
    end = buffer.rfind(b"\n")
    if end < 0:
        if len(buffer) > limit:
            raise PayloadTooLargeError.over_limit("A stream chunk", limit, len(buffer))
        return []
    text = bytes(buffer[:end]).decode("utf-8", errors="replace")
    del buffer[:end + 1]
    return [line for line in text.split("\n") if line.strip()]


@router.post("/realtime/v1/streams/{run_id}/{target}/{key}")
async def ingest(run_id: str, target: str, key: str, request: Request) -> Response:
    """Each line of the (chunked) body is stored as it arrives: readers see it at once."""
    svc = services_of(request)
    require_key(request, svc)
    _check_target(target)
    check_key(key)
    client = request.headers.get("x-client-id") or None
    if client is not None and len(client) > 128:
        raise BadRequestError("X-Client-Id is longer than 128 characters")
    resume = request.headers.get("x-resume-from-chunk") or "0"
    if not resume.isdigit() or len(resume) > 12:
        raise BadRequestError(f"X-Resume-From-Chunk must be a whole number, not {resume[:20]!r}")
    number, buffer, limit = int(resume), bytearray(), _chunk_limit(svc)
    _open_ingests[(run_id, key)] += 1
    try:
        await svc.engine.append_stream(run_id, key, [])  # 404 before reading a body
        async for part in body_chunks(request):
            buffer += part
            lines = _lines(buffer, limit)
            if lines:
                await svc.engine.append_stream(run_id, key, lines, client, number)
                number += len(lines)
        if buffer.strip():
            await svc.engine.append_stream(run_id, key, [buffer.decode(errors="replace")],
                                           client, number)
    finally:
        _open_ingests[(run_id, key)] -= 1
        if _open_ingests[(run_id, key)] <= 0:
            del _open_ingests[(run_id, key)]
        # an ingest that ended may be what a reader of a finished run waits for
        for woken in _readers.get((run_id, key), ()):
            woken.set()
    return Response(status_code=200)


@router.head("/realtime/v1/streams/{run_id}/{target}/{key}")
async def resume_probe(run_id: str, target: str, key: str, request: Request) -> Response:
    svc = services_of(request)
    require_key(request, svc)
    _check_target(target)
    client = request.headers.get("x-client-id") or ""
    last = await svc.engine.queries.streams.last_client_index(run_id, check_key(key), client) \
        if client else -1
    return Response(status_code=200, headers={"x-last-chunk-index": str(last)})


@router.post("/realtime/v1/streams/{run_id}/{target}/{key}/append")
async def append(run_id: str, target: str, key: str, request: Request) -> Response:
    """The raw body is one chunk: a string."""
    svc = services_of(request)
    require_key(request, svc)
    _check_target(target)
    body = await read_body(request, _chunk_limit(svc), svc.settings.payload_limit_bytes)
    text = body.decode("utf-8", errors="replace")
    await svc.engine.append_stream(run_id, check_key(key), [json.dumps(text)])
    return ok({"ok": True})


@router.post("/engine/v1/runs/{run_id}/streams/{key}")
async def task_append(run_id: str, key: str, request: Request) -> Response:
    """The Python runtime's writes: an NDJSON body, one chunk a line, in order (empty: create
    the stream); or `{"chunks": [value, ...]}`. Lines are checked to be JSON values."""
    svc = services_of(request)
    await run_auth(request).check(request, svc.engine, run_id)
    if request.headers.get("content-type", "").startswith("application/x-ndjson"):
        raw = await read_body(request, body_limit(svc))
        data = [line for line in raw.decode("utf-8", errors="replace").split("\n") if line]
        _check_json(data)
    else:
        chunks = (await read_json(request, svc)).get("chunks", [])
        if not isinstance(chunks, list):
            raise ValidationError("chunks must be a list of JSON values")
        data = [json.dumps(c, separators=(",", ":")) for c in chunks]
    return ok({"length": await svc.engine.append_stream(run_id, check_key(key), data)})


def _check_json(lines: list[str]) -> None:
    decode = json.JSONDecoder().raw_decode
    for number, line in enumerate(lines):
        if not limits.json_depth_at_most(line):  # the parser recurses
            raise ValidationError(f"line {number + 1} nests deeper than {limits.MAX_JSON_DEPTH}")
        try:
            end = decode(line)[1]
        except ValueError as exc:
            raise ValidationError(f"line {number + 1} is not a JSON value: {exc}") from exc
        if line[end:].strip():
            raise ValidationError(f"line {number + 1} holds more than one JSON value")


def _start_after(request: Request) -> int | None:
    """The index a reader has: `Last-Event-ID` (its leading number), -1 for the start; None:
    `X-Trigger-Stream-Start: latest`."""
    last = request.headers.get("last-event-id")
    if last:
        head = last.split("-", 1)[0].strip()
        if not head.isdigit() or len(head) > 18:
            raise BadRequestError(f"Last-Event-ID must be a chunk index, not {last[:40]!r}")
        return int(head)
    if request.headers.get("x-trigger-stream-start") == "latest":
        return None
    return -1


def _timeout(request: Request) -> float:
    raw = request.headers.get("timeout-seconds")
    if raw is None or raw == "":
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 600:
        raise BadRequestError(f"Timeout-Seconds must be a number from 1 to 600, not {raw[:20]!r}")
    return value


def _frame(index: int, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"id: {index}\n{lines}\n"


async def _follow(svc: DaemonServices, run_id: str, key: str, after: int,
                  idle_s: float) -> AsyncIterator[bytes]:
    read, hub, loop = svc.engine.queries, svc.engine.hub, asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake(event: Event) -> None:  # new chunks of this stream, the run's end, a stop
        if isinstance(event, StreamAppended):
            if event.run_id == run_id and event.key == key:
                woken.set()
        elif isinstance(event, Draining) or (isinstance(event, RunStatusChanged)
                                             and event.run_id == run_id):
            woken.set()

    unsubscribe = hub.subscribe(Event, wake)
    _readers.setdefault((run_id, key), set()).add(woken)
    last_data = last_sent = loop.time()
    try:
        yield b": connected\n\n"
        while True:
            woken.clear()
            chunks = await read.streams.chunks(run_id, key, after, PAGE)
            if chunks:
                after = chunks[-1].index
                last_data = last_sent = loop.time()
                yield "".join(_frame(c.index, c.data) for c in chunks).encode()
                continue
            run = await read.runs.get(run_id)
            now = loop.time()
            if run is None or (run.is_final and (run_id, key) not in _open_ingests) \
                    or now - last_data >= idle_s or hub.draining.is_set():
                return
            if now - last_sent >= PING_S:
                last_sent = now
                yield b": ping\n\n"
            try:
                await asyncio.wait_for(woken.wait(), min(PING_S, idle_s - (now - last_data)))
            except TimeoutError:
                pass
    finally:
        unsubscribe()
        readers = _readers.get((run_id, key))
        if readers is not None:
            readers.discard(woken)
            if not readers:
                del _readers[(run_id, key)]


@router.get("/realtime/v1/streams/{run_id}/{key}")
async def read_stream(run_id: str, key: str, request: Request) -> Response:
    """Chunks after `Last-Event-ID` (or from the start; `X-Trigger-Stream-Start: latest`: from
    now), as server-sent events."""
    svc = services_of(request)
    run = await svc.engine.queries.runs.get(run_id)
    scopes = [f"read:runs:{run_id}"]
    if run is not None:
        scopes += [f"read:tasks:{run.task_id}", *(f"read:tags:{t}" for t in run.tags)]
    caller = require_key(request, svc, scopes)
    if run is None or not caller.sees(run.project):
        raise NotFoundError("Run not found", run_id=run_id)
    check_key(key)
    after, idle_s = _start_after(request), _timeout(request)
    if after is None:
        after = await svc.engine.queries.streams.length(run_id, key) - 1
    return StreamingResponse(_follow(svc, run_id, key, after, idle_s),
                             media_type="text/event-stream",
                             headers={**CORS, "cache-control": "no-cache",
                                      "x-accel-buffering": "no"})


@router.get("/api/v1/local/runs/{run_id}/streams")
async def list_streams(run_id: str, request: Request) -> Response:
    """`{"streams": [{"key", "length"}]}` in creation order (the CLI and the dashboard)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    run = await svc.engine.queries.runs.get(run_id)
    if run is None or not caller.sees(run.project):
        raise NotFoundError("Run not found", run_id=run_id)
    read = svc.engine.queries.streams
    return ok({"streams": [{"key": k, "length": await read.length(run_id, k)}
                           for k in await read.keys(run_id)]})


@router.get("/api/v1/local/runs/{run_id}/streams/{key}")
async def stream_page(run_id: str, key: str, request: Request) -> Response:
    """`{"chunks": [{"index", "value"}], "length"}`: the chunks after index `after` (-1: from
    the start), at most `limit` (1000)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    run = await svc.engine.queries.runs.get(run_id)
    if run is None or not caller.sees(run.project):
        raise NotFoundError("Run not found", run_id=run_id)
    after = int_param(request.query_params.get("after"), "after", -1, -1, 2**53)
    limit = int_param(request.query_params.get("limit"), "limit", PAGE, 1, PAGE)
    read = svc.engine.queries.streams
    chunks = await read.chunks(run_id, check_key(key), after, limit)
    return ok({"chunks": [{"index": c.index, "value": _value(c.data)} for c in chunks],
               "length": await read.length(run_id, key), "final": run.is_final})


def _value(data: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data  # a line a Node writer sent that is not JSON: shown as it came
