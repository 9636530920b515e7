"""The daemon's HTTP server: uvicorn on a socket the daemon binds itself, without uvicorn's own
signal handlers (the daemon handles them to stop in order, daemon_core.py), and a drain that stops
accepting, lets in-flight requests finish for a moment, then cuts the rest (keep-alive
connections: http_drain.py); a request head or body that does not come in time closes its
connection (http_deadline.py), and a head past sensible limits is refused (http_limits.py)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from .errors import StartupError
from .http_head import HeadAsGet
from .http_limits import HeadLimitsHttp

DRAIN_S = 0.5  # in-flight requests may finish after the server stopped accepting


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon handles them to shut down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn on the daemon's socket. `drain` stops accepting (the listening socket closes:
    clients get "connection refused"), answers what comes on idle keep-alive connections with
    `Connection: close` then half-closes them (http_drain.py), lets in-flight requests finish
    for up to `timeout_s`, then cuts the rest."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        # timeout_graceful_shutdown is typed int but only reaches asyncio.wait_for: a float works.
        # proxy_headers off: no proxy stands before the daemon, so X-Forwarded-For from a local
        # client named the peer it liked, and the layer that read it cost every request a call
        # (issue #13); server_header off: 17 bytes of "server: uvicorn" less in every answer
        # log_config None: uvicorn's loggers get no handlers of their own, and their lines go
        # through the daemon's logging (logs.py) in its format
        config = uvicorn.Config(HeadAsGet(app), log_config=None, log_level="warning",
                                access_log=False,
                                lifespan="off", proxy_headers=False, server_header=False,
                                timeout_keep_alive=60, http=HeadLimitsHttp,
                                timeout_graceful_shutdown=DRAIN_S)  # type: ignore[arg-type]
        self.server = _Server(config)
        self.sock = sock
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        return self.task

    async def drain(self, timeout_s: float) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        done, _ = await asyncio.wait([self.task], timeout=timeout_s + 0.5)
        if not done:
            self.server.force_exit = True
            self.task.cancel()
            await asyncio.wait([self.task], timeout=0.5)


def bind(host: str, port: int) -> socket.socket:
    if not host.strip():  # the OS reads "" as every address: a blank variable is not that
        raise StartupError("Cannot listen on an empty host: the system would take it as every "
                           "address, not loopback. Give --host (TRIGGER_LOCAL_HOST) an address "
                           "such as 127.0.0.1 (the default; 0.0.0.0 for every address), or unset "
                           "it.")
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every small response waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OverflowError:
        sock.close()
        raise StartupError(f"Cannot listen on {host}:{port}: a port is a number from 0 to 65535 "
                           "(0 picks a free one). Pass another --port or "
                           "TRIGGER_LOCAL_PORT.") from None
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Check "
                               "--host (TRIGGER_LOCAL_HOST) and --port "
                               "(TRIGGER_LOCAL_PORT).") from None
        raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror}. Another program (or "
                           "another trigger-local daemon) uses that port: stop it or pass "
                           "--port.") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock
