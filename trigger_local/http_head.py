"""`HEAD` answered as `GET` without a body (RFC 9110 §9.3.2).

FastAPI's routes list only the methods they declare, so a `HEAD` of `/healthz` or of any API
`GET` route was a 405 (Starlette's own routes add HEAD; FastAPI's do not). `HeadAsGet` wraps
the whole app: a HEAD request goes in as it is, and only when its route refuses it (405) again as
a GET, whose answer goes out with its status and headers only — a route that declares HEAD
itself keeps its own answer. uvicorn drops the body of an answer to a request it read as HEAD,
so only the end matters here: the answer is complete once its head is out, and the endpoint
is told the client left, so that a streamed answer (the SSE event stream, a long-poll) ends at
once instead of running for nobody.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: a HEAD request its route does not take (405) runs again as GET, and
    that answer ends with its head. A route that declares HEAD itself (the realtime stream's
    `HEAD …/streams/{runId}/{key}`, which answers `x-last-chunk-index`) keeps its own answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def own_send(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, own_send)
        if refused:
            await self._as_get(scope, receive, send)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = False
        asked = False

        async def head_receive() -> Message:
            nonlocal asked
            if not asked:  # a HEAD has no body; the first try read what there was
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if answered:
                return {"type": "http.disconnect"}
            return await receive()

        async def head_send(message: Message) -> None:
            nonlocal answered
            if answered:
                return  # the body of a GET: HEAD has none
            await send(message)
            if message["type"] == "http.response.start":
                answered = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, head_receive, head_send)
