"""A small real HTTP server that plays the daemon's worker routes, for runtime tests.

Other runtime/SDK test files import `DaemonStub` and `serve_stub` from here; the tests
at the bottom pin the stub itself. It records every call and answers waits from
`wait_plans` (waitpoint id → how to answer), so tests drive each wait path deliberately.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trigger_local.sdk import registry


class DaemonStub:
    """Assignments are handed out in order by `next`; `retire()` ends the worker's loop."""

    def __init__(self) -> None:
        self.assignments: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.retiring = False
        self.calls: list[tuple[str, str, Any]] = []
        self.completions: list[tuple[str, dict[str, Any]]] = []
        self.logs: list[dict[str, Any]] = []
        self.metadata_puts: list[dict[str, Any]] = []
        self.wait_plans: dict[str, dict[str, Any]] = {}  # wp id -> {"action", "result"}
        self.done: dict[str, dict[str, Any]] = {}  # wp id -> result once completed
        self.next_requests: list[Any] = []
        self.conflict_runs: set[str] = set()  # answer 409 to these runs' completions
        self._changed = asyncio.Condition()
        self.url = ""
        self.app = Starlette(routes=[
            Route("/engine/v1/workers/{wid}/next", self.next_, methods=["GET"]),
            Route("/engine/v1/runs/{rid}/attempts/{n}/complete", self.complete, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/attempts/{n}/wait", self.wait, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/attempts/{n}/freeze", self.freeze, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/waits/{wp}", self.poll, methods=["GET"]),
            Route("/engine/v1/runs/{rid}/trigger", self.trigger, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/batch", self.batch, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/logs", self.logs_, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/metadata", self.metadata, methods=["PUT"]),
            Route("/engine/v1/runs/{rid}/tokens", self.tokens, methods=["POST"]),
            Route("/engine/v1/runs/{rid}/attempts/{n}/steps", self.steps, methods=["POST"]),
        ])

    # -- test side ------------------------------------------------------------------------
    def assign(self, run_id: str, task_id: str, payload: str | None = None, **extra: Any) -> None:
        self.assignments.put_nowait({
            "run_id": run_id, "attempt": 1, "run_token": f"tok-{run_id}", "task_id": task_id,
            "payload": payload, "payload_type": "application/json", "metadata": {},
            "ctx": {"run": {"id": run_id, "tags": ["t1"]}, "task": {"id": task_id},
                    "attempt": {"number": 1}, "queue": {"name": f"task/{task_id}"},
                    "machine": "small-1x", "version": "version_1",
                    "environment": {"type": "DEVELOPMENT"}}, **extra})

    async def complete_waitpoint(self, wp: str, result: dict[str, Any]) -> None:
        async with self._changed:
            self.done[wp] = result
            self._changed.notify_all()

    async def retire(self) -> None:
        async with self._changed:
            self.retiring = True
            self._changed.notify_all()

    async def until(self, predicate: Callable[[], bool], deadline_s: float = 10) -> None:
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _record(self, kind: str, run_id: str, body: Any) -> None:
        async with self._changed:
            self.calls.append((kind, run_id, body))
            self._changed.notify_all()

    # -- routes ---------------------------------------------------------------------------
    async def next_(self, request: Request) -> JSONResponse:
        wait_s = float(request.query_params.get("wait_s", "20"))
        get = asyncio.ensure_future(self.assignments.get())
        retire = asyncio.ensure_future(self.until(lambda: self.retiring, wait_s))
        done, pending = await asyncio.wait({get, retire}, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            fut.cancel()
        if get in done:
            return JSONResponse({"assignment": get.result()})
        return JSONResponse({"retire": True} if self.retiring else {"assignment": None})

    async def freeze(self, request: Request) -> JSONResponse:
        """The freeze handshake: this stand-in never dumps, so it declines."""
        await self._record("freeze", request.path_params["rid"], {})
        return JSONResponse({"freeze": False})

    async def complete(self, request: Request) -> JSONResponse:
        rid, body = request.path_params["rid"], await request.json()
        # complete-and-take-next (not served here)
        self.next_requests.append(body.pop("next", None))
        if rid in self.conflict_runs:
            return JSONResponse({"error": "attempt is not current", "code": "conflict"}, 409)
        self.completions.append((rid, body))
        await self._record("complete", rid, body)
        return JSONResponse({"status": "COMPLETED" if body["ok"] else "FAILED"})

    async def wait(self, request: Request) -> JSONResponse:
        rid, body = request.path_params["rid"], await request.json()
        wp = body.get("waitpointId") or f"wp_duration_{len(self.calls)}"
        await self._record("wait", rid, body)
        done = {"ok": True, "status": "COMPLETED", "output": None,
                "outputType": "application/json"}
        plan = self.wait_plans.get(wp, {"action": "continue", "result": done})
        if plan["action"] == "continue":
            return JSONResponse({"action": "continue", "waitpointId": wp, "result": plan["result"]})
        return JSONResponse({"action": plan["action"], "waitpointId": wp})

    async def poll(self, request: Request) -> JSONResponse:
        wp = request.path_params["wp"]
        await self._record("poll", request.path_params["rid"], wp)
        try:
            await self.until(lambda: wp in self.done,
                             float(request.query_params.get("wait_s", "5")))
        except TimeoutError:
            return JSONResponse({"done": False})
        return JSONResponse({"done": True, "result": self.done[wp]})

    async def trigger(self, request: Request) -> JSONResponse:
        body = await request.json()
        n = len(self.calls)
        await self._record("trigger", request.path_params["rid"], body)
        answer = {"id": f"run_child{n}", "isCached": False}
        if body.get("wait"):
            answer["waitpointId"] = f"wp_child{n}"
        return JSONResponse(answer)

    async def batch(self, request: Request) -> JSONResponse:
        body = await request.json()
        await self._record("batch", request.path_params["rid"], body)
        answer = {"batchId": "batch_1", "runs": [{"id": f"run_b{i}", "isCached": False}
                                                 for i in range(len(body["items"]))]}
        if body.get("wait"):
            answer["waitpointId"] = "wp_batch_1"
        return JSONResponse(answer)

    async def logs_(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.logs.extend(body["entries"])
        await self._record("logs", request.path_params["rid"], body)
        return JSONResponse({})

    async def metadata(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.metadata_puts.append(body["metadata"])
        await self._record("metadata", request.path_params["rid"], body)
        return JSONResponse(body)

    async def tokens(self, request: Request) -> JSONResponse:
        body = await request.json()
        await self._record("tokens", request.path_params["rid"], body)
        return JSONResponse({"id": "waitpoint_tok1", "url": f"{self.url}/tok1", "isCached": False})

    async def steps(self, request: Request) -> JSONResponse:
        body = await request.json()
        await self._record("steps", request.path_params["rid"], body)
        return JSONResponse({"seq": body["record"]["seq"], "status": body["status"]})

    def of_kind(self, kind: str) -> list[Any]:
        return [body for k, _, body in self.calls if k == kind]


@contextlib.asynccontextmanager
async def serve_stub() -> AsyncIterator[DaemonStub]:
    """A DaemonStub served by uvicorn on a free port of 127.0.0.1 for the duration of the block
    (the `stub` fixture, `served_stub`, of each test module that imports it)."""
    daemon = DaemonStub()
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it every response waits ~40 ms on Nagle + delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    daemon.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.listen(128)  # connections queue in the backlog until uvicorn accepts: no start race
    server = uvicorn.Server(uvicorn.Config(daemon.app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield daemon
    finally:
        await daemon.retire()
        server.should_exit = True
        await serving
        sock.close()


@pytest.fixture(name="stub")
async def served_stub() -> AsyncIterator[DaemonStub]:
    """`stub` of the test modules that import it: a DaemonStub served for one test."""
    async with serve_stub() as daemon:
        yield daemon


@pytest.fixture(name="clean_registry", autouse=True)
def registry_cleared() -> Iterator[None]:
    """In each test module that imports it (and this one): the task registry is empty before
    and after each test (the tasks a test defines are its own)."""
    registry.clear()
    yield
    registry.clear()


async def test_stub_hands_out_assignments_then_retires(stub: DaemonStub) -> None:
    stub.assign("run_1", "hello", '{"a":1}')
    async with httpx.AsyncClient(base_url=stub.url) as http:
        first = (await http.get("/engine/v1/workers/w/next", params={"wait_s": 1})).json()
        assert first["assignment"]["run_id"] == "run_1"
        await stub.retire()
        assert (await http.get("/engine/v1/workers/w/next",
                               params={"wait_s": 1})).json() == {"retire": True}
