"""A lean HTTP/1.1 transport for the worker routes: kept-alive asyncio streams, JSON in,
Content-Length or chunked bodies out.

Why not httpx here: a warm process's per-run overhead is two requests (`next`, `complete`),
and on a small machine httpx spends ~0.9 ms of CPU on each, which is most of the budget for
500 runs/s. This does the same exchange in a fraction of that. It only speaks plain `http://`
to the local daemon; `WorkerClient` falls back to httpx for anything else.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from ..errors import ProtocolError

_MAX_IDLE = 16  # a shared process's runs make requests side by side


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # the request goes out in one write, but never let Nagle hold a reply's ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def stale(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, head: bytes, body: bytes | None) -> tuple[int, bytes, bool]:
        self.writer.write(head + body if body else head)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            return status, b"", keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, await self._chunked(), keep
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"])), keep
        return status, await self.reader.read(), False  # body ends with the connection

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await self._trailer()
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def _trailer(self) -> None:
        while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
            pass


class StreamTransport:
    """`Transport` for `WorkerClient` over a small pool of kept-alive connections (another one
    opens only when requests overlap: a background log flush, or the runs of a shared
    process)."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"StreamTransport speaks plain http only, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self._prefix = url.path.rstrip("/")
        self._host_header = url.netloc
        self._idle: list[_Conn] = []

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]:
        lines = [f"{method} {self._prefix}{path} HTTP/1.1", f"Host: {self._host_header}",
                 *(f"{k}: {v}" for k, v in headers.items()),
                 f"Content-Length: {len(body) if body else 0}", "", ""]
        head = "\r\n".join(lines).encode("latin-1")
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._use(conn, head, body, timeout_s)
            except TimeoutError:
                raise
            except (OSError, EOFError):
                # the daemon closed the idle connection (keep-alive timeout, restart): once more
                pass
        return await self._use(await _Conn.open(self.host, self.port), head, body, timeout_s)

    def _take_idle(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.stale():
                return conn
            conn.close()
        return None

    async def _use(self, conn: _Conn, head: bytes, body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(timeout_s):
                status, data, keep = await conn.exchange(head, body)
        except BaseException:
            conn.close()  # half-read: never reuse
            raise
        if keep and b"Connection: close" not in head and len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return status, data

    async def reset(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                await conn.writer.wait_closed()
            except OSError:
                pass

    async def aclose(self) -> None:
        await self.reset()
