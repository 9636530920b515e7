"""`HEAD` answered as `GET` without a body (RFC 9110 §9.3.2).

FastAPI's routes list only the methods they declare, so a `HEAD` of `/healthz` or of any API
`GET` route was a 405 (Starlette's own routes add HEAD; FastAPI's do not). `HeadAsGet` wraps
the whole app: a HEAD request goes in as a GET, and its answer goes out with its status and
headers only. uvicorn drops the body of an answer to a request it read as HEAD, so only the
end matters here: the answer is complete once its head is out, and the endpoint is told the
client left, so that a streamed answer (the SSE event stream, a long-poll) ends at once instead
of running for nobody.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: HEAD requests run as GET; their answer ends with its head."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        answered = False

        async def head_receive() -> Message:
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
