"""How the daemon's HTTP server lets go of its keep-alive connections when it drains (SIGTERM:
daemon_core.py), so that a client can always tell whether its request was received.

uvicorn's drain closes every idle keep-alive connection at once. A client that had just sent
its next request on one (a loop of triggers does so right after each answer) then got
"connection reset" with no answer, and could not tell whether its trigger was committed (it
was not: the bytes arrived on a closed socket; ~2 of 950 triggers sent through a SIGTERM). Here
the drain goes in two steps:

1. an idle connection stays open for `IDLE_S`: a request that comes on it is served as any
   other and answered with `Connection: close`, after which the connection closes (a request
   in flight when the drain began is answered the same way: uvicorn's rule);
2. then it is half-closed (FIN, no reset): a request that crosses it is never read, and its
   client sees the connection end without an answer ("server disconnected without sending a
   response"). The drain does not wait for such a connection (its client may not look at it
   again before the daemon is gone; the daemon's exit closes it).

So every request the daemon received gets an answer — committed, or refused with a clear
status — unless it outlasts the drain's `DRAIN_S` (http_server.py), and a request that got no
answer at all on a kept-alive connection was not received (or outlasted that): sending it
again with its request idempotency key is safe (docs/architecture.md, "Crash safety").
"""

from __future__ import annotations

import asyncio

from .http_writes import OneWriteHttp

#: how long an idle connection stays open in a drain for a request already on its way
IDLE_S = 0.2
#: how long a half-closed connection waits for its client to close it before it is closed
HALF_CLOSED_S = 1.0


class DrainingHttp(OneWriteHttp):
    """The daemon's HTTP protocol (http_writes.py's), with the drain above."""

    _draining = False
    _deaf = False  # half-closed: what comes now is never read
    _idle_close: asyncio.TimerHandle | None = None

    def shutdown(self) -> None:
        """The server drains (uvicorn calls this on every connection)."""
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self._idle_close = self.loop.call_later(IDLE_S, self._half_close)
        else:
            self.cycle.keep_alive = False

    def data_received(self, data: bytes) -> None:
        if self._deaf:
            return
        if self._idle_close is not None:  # a request arrives: it is answered, not cut
            self._idle_close.cancel()
            self._idle_close = None
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with `Connection: close`, then closed

    def _half_close(self) -> None:
        self._idle_close = None
        if self.transport.is_closing() or not (self.cycle is None
                                               or self.cycle.response_complete):
            return
        self._deaf = True
        # nothing more comes from it: the drain does not wait for its client to close it
        self.connections.discard(self)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the end, then closes its side
            self.loop.call_later(HALF_CLOSED_S, self.transport.close)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        super().connection_lost(exc)
