"""In-process notifications: who should wake up when the store changed.

The engine publishes after each commit; the dispatcher, long-polling workers, the SSE stream
and the executor subscribe. Nothing here is durable — the events table is; a subscriber that
missed something reads it from there.
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

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(type_, data)

    def wake(self, key: str) -> None:
        for event in self._waiters.pop(key, set()):
            event.set()

    async def wait(self, key: str, timeout_s: float) -> bool:
        """Sleep until `wake(key)` or the timeout; True if woken."""
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
