"""A run's stream writes on their way to the daemon: per-key buffers, sent in batches.

`add(key, value)` (from any thread) buffers a chunk and makes sure one sender runs on the
runtime's loop. The sender takes everything buffered so far and sends it, one request per key
(`POST /engine/v1/runs/{id}/streams/{key}`), then looks again: while a request is on the wire
new chunks pile up and leave together in the next one. So a lone chunk leaves at once (low
latency), and a fast producer's chunks are batched (high throughput) with no timer to tune.
One sender at a time keeps every key's chunks in order. `flush()` returns once everything added
before it is stored: the runtime calls it before a wait (the process may be checkpointed) and
before completing, so a run never ends with chunks still in flight."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import AttemptGone

Send = Callable[[str, list[Any]], Awaitable[Any]]


class StreamBuffers:
    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self._send, self._loop = send, loop
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._pending: dict[str, list[Any]] = {}
        self._sender: asyncio.Task[None] | None = None
        self.gone = False
        self.error: BaseException | None = None

    def add(self, key: str, value: Any, *, create_only: bool = False) -> None:
        """Buffer a chunk of stream `key` (`create_only`: make the stream exist, no chunk)."""
        with self._lock:
            chunks = self._pending.setdefault(key, [])
            if not create_only:
                chunks.append(value)
        if threading.get_ident() == self._loop_thread:
            self._kick()
        else:
            self._loop.call_soon_threadsafe(self._kick)

    def _kick(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                for key, chunks in batch.items():
                    await self._send(key, chunks)
            except AttemptGone:
                self.gone = True
                return
            except Exception as exc:  # a lost chunk must not kill the run; flush reports it
                self.error = exc
                print(f"trigger-local: a stream write failed: {exc!r}", file=sys.__stderr__)

    async def flush(self) -> None:
        """Return once every chunk added so far is stored (or its send failed)."""
        while True:
            sender = self._sender
            if sender is not None and not sender.done():
                await asyncio.shield(sender)
                continue
            with self._lock:
                if not self._pending:
                    return
            self._kick()
