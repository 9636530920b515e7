"""One write per small HTTP answer (issue #13).

uvicorn's httptools protocol writes an answer's head (`http.response.start`) and its body
(`http.response.body`) with two `transport.write` calls: two `send(2)`s, two segments on the
loopback, and two wake-ups of the client for every answer — a trigger's, a status poll's.
On this project's 2-core machine each `send` to a waiting client is where the daemon loses
its core to that client (profiled: ~17 % of the daemon's samples during one-HTTP-trigger-per-run
throughput were these writes), and the first of the two is useless to the client, which waits
for the body anyway.

`OneWriteHttp` is uvicorn's protocol with the transport wrapped: a write that is a response's
head is held and goes out with the next write (the body, which uvicorn writes in the same turn
of the event loop), or on the loop's next turn if none comes (a streamed answer's head, a
`100 Continue`). Nothing is reordered and nothing waits for more than that one turn; every
other write goes straight through. A connection upgraded to a WebSocket keeps the wrapper, which
then only passes its writes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: how every response head written by uvicorn begins (an answer's body never starts a write
#: with it unless it is one: held, it still goes out in order, one turn later at most)
_HEAD = b"HTTP/1.1 "


class HeadHoldingTransport:
    """A transport that holds a response head until the next write or the next loop turn."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._flush_soon: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data = self._held + bytes(data)
            self._release()
        elif bytes(data[:len(_HEAD)]) == _HEAD and bytes(data[-4:]) == b"\r\n\r\n":
            self._held = bytes(data)
            self._flush_soon = asyncio.get_running_loop().call_soon(self.flush)
            return
        self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Send a held head now."""
        held = self._held
        self._release()
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def _release(self) -> None:
        self._held = None
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._release()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:  # the rest of the transport, as it is
        return getattr(self._transport, name)


class OneWriteHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing each small answer with one `send`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadHoldingTransport(transport))  # type: ignore[arg-type]
