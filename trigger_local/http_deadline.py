"""A request's head must arrive within `HEAD_DEADLINE_S`, and its body within `BODY_DEADLINE_S`
of the read that brought the end of its head, or its connection is closed (a late body is
answered 408 first, unless an answer has begun). A body that keeps coming, at least
`BODY_MIN_BYTES_PER_S` over each `BODY_DEADLINE_S`, gets another period: a big payload from
another host (`up --host 0.0.0.0`, a payload limit up to 512 MiB) on a slow link is not cut.

uvicorn times out a kept-alive connection only between requests: a connection that sends
nothing, the start of a request head and then nothing more, or a head and then a body that
trickles in a byte at a time, would stay open forever, holding a file descriptor (and a request
task waiting for the body). A few thousand such sockets (any local process can open them) would
take the daemon to its open-files limit, past which it cannot open the database, accept a task
process or start one (`ulimit -n`). A real client sends its head in one go, in milliseconds,
and its body (3 MiB at most by default: the payload limit) in well under a second on the
loopback, and far above the floor over a network."""

from __future__ import annotations

import asyncio

from .http_drain import DrainingHttp

#: from a connection's start, or the first byte of a request, to the end of that request's head
HEAD_DEADLINE_S = 30.0
#: from the end of a request's head to the end of its body
BODY_DEADLINE_S = 60.0
#: the slowest a body may come and still be waited for past BODY_DEADLINE_S (512 kbit/s)
BODY_MIN_BYTES_PER_S = 64 * 1024

_MESSAGE = b"The request body did not arrive in time."
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                   % (len(_MESSAGE), _MESSAGE))


class HeadDeadlineHttp(DrainingHttp):
    """The daemon's HTTP protocol (http_drain.py's), closing a connection whose request head,
    or body, does not arrive in time."""

    _head_deadline: asyncio.TimerHandle | None = None
    _body_deadline: asyncio.TimerHandle | None = None
    _body_due = False  # a request's head came, and the end of its body has not
    _body_read = 0  # bytes read since the body's deadline was (re)armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # armed only when a read ends inside a body: a request that came whole (most do)
        # costs no timer
        if self._body_deadline is not None:
            self._body_read += len(data)
        elif self._body_due and not self.transport.is_closing():
            self._body_read = 0
            self._body_deadline = self.loop.call_later(BODY_DEADLINE_S, self._body_late)

    def on_headers_complete(self) -> None:
        self._head_arrived()
        self._body_due = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_arrived()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        self._body_arrived()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_deadline = self.loop.call_later(HEAD_DEADLINE_S, self._head_late)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _body_arrived(self) -> None:
        self._body_due = False
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_late(self) -> None:
        self._body_deadline = None
        if self.transport.is_closing():
            return
        if self._body_read >= BODY_MIN_BYTES_PER_S * BODY_DEADLINE_S:  # slow, but coming
            self._body_read = 0
            self._body_deadline = self.loop.call_later(BODY_DEADLINE_S, self._body_late)
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()
