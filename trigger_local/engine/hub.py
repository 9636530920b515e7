"""In-process notifications: who should wake up when the store changed.

The engine publishes after each commit; the dispatcher, long-polling workers, the SSE stream
and the executor subscribe. Nothing here is durable — the events table is; a subscriber that
missed something reads it from there.

`drain()` is the daemon's shutdown telling every long-poll to answer now: waiters wake,
listeners get a `daemon.draining` notification, and `wait` returns at once from then on, so the
HTTP server can stop without cutting a request off (daemon.py, "Shutdown").
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]


class Hub:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.draining = asyncio.Event()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(type_, data)

    def wake(self, key: str) -> None:
        for event in self._waiters.pop(key, set()):
            event.set()

    def drain(self) -> None:
        """Answer every long-poll now, and every later one at once (the daemon is stopping)."""
        self.draining.set()
        for key in list(self._waiters):
            self.wake(key)
        self.publish("daemon.draining", {})

    async def wait(self, key: str, timeout_s: float) -> bool:
        """Sleep until `wake(key)`, the timeout or `drain()`; True if woken."""
        if self.draining.is_set():
            return True
        event = asyncio.Event()
        self._waiters[key].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    self._waiters.pop(key, None)
