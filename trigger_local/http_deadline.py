"""A request's head must arrive within `HEAD_DEADLINE_S`, or its connection is closed.

uvicorn times out a kept-alive connection only between requests: a connection that sends
nothing, or the start of a request head and then nothing more, would stay open forever, holding
a file descriptor. A few thousand such sockets (any local process can open them) would take the
daemon to its open-files limit, past which it cannot open the database, accept a task process
or start one (`ulimit -n`). A real client sends its head in one go, in milliseconds."""

from __future__ import annotations

import asyncio

from .http_drain import DrainingHttp

#: from a connection's start, or the first byte of a request, to the end of that request's head
HEAD_DEADLINE_S = 30.0


class HeadDeadlineHttp(DrainingHttp):
    """The daemon's HTTP protocol (http_drain.py's), closing a connection whose request head
    does not arrive in time."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_head()

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_deadline = self.loop.call_later(HEAD_DEADLINE_S, self._head_late)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
