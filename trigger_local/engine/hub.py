"""In-process notifications: who should wake up when the store changed.

The engine publishes each recorded event (engine/events.py) after its transaction commits; the
dispatcher, the executors, the SSE stream and the event long-poll subscribe to the classes they
care about (`subscribe(RunStatusChanged, handler)`; subscribing to a base class sees its
subclasses, `Event` sees everything). Nothing here is durable — the events table is; a
subscriber that missed something reads it from there.

A listener that raises is reported and skipped: the others still get the event, and the change
that was committed is not reported as failed to whoever made it.

Keyed wake-ups (`wait(key)` / `wake(key)`) serve long-polls that wait for one thing, a held
run's wait result (`run_key`): the engine wakes them from the events, never by hand.

`drain()` is the daemon's shutdown telling every long-poll to answer now: waiters wake,
listeners get a `Draining` notice, and `wait` returns at once from then on, so the HTTP server
can stop without cutting a request off (daemon_core.py, "Shutdown").
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..supervise import report
from .events import ChangedElsewhere, Draining, Event

E = TypeVar("E", bound=Event)
Listener = Callable[[Any], None]


def run_key(run_id: str) -> str:
    """The key a held run's wait-result poll waits on."""
    return f"run:{run_id}"


class Hub:
    def __init__(self) -> None:
        self._listeners: dict[type, list[Listener]] = defaultdict(list)
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.draining = asyncio.Event()

    def subscribe(self, kind: type[E], listener: Callable[[E], None]) -> Callable[[], None]:
        """Call `listener` with every published event of class `kind` (or a subclass), until the
        returned function is called."""
        self._listeners[kind].append(listener)
        return lambda: self._listeners[kind].remove(listener)

    def publish(self, event: Event) -> None:
        for kind in type(event).__mro__:
            for listener in list(self._listeners.get(kind, ())):
                try:
                    listener(event)
                except Exception as exc:  # noqa: BLE001 - one listener must not fail the rest
                    report("error", "an event listener failed", kind=type(event).__name__,
                           listener=getattr(listener, "__qualname__", repr(listener)),
                           exc_info=exc)

    def publish_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.publish(event)

    def wake(self, key: str) -> None:
        for waiter in self._waiters.pop(key, set()):
            waiter.set()

    def changed_elsewhere(self) -> None:
        """Another daemon sharing the database committed (its NOTIFY): a `ChangedElsewhere`
        notice, so that what reads the durable tables (dispatcher, streams, long-polls) looks
        again. Like `Draining`, a notice no transaction of this daemon recorded."""
        self.publish(ChangedElsewhere())

    def drain(self) -> None:
        """Answer every long-poll now, and every later one at once (the daemon is stopping)."""
        self.draining.set()
        for key in list(self._waiters):
            self.wake(key)
        self.publish(Draining())

    async def wait(self, key: str, timeout_s: float) -> bool:
        """Sleep until `wake(key)`, the timeout or `drain()`; True if woken."""
        if self.draining.is_set():
            return True
        waiter = asyncio.Event()
        self._waiters[key].add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(key, None)
