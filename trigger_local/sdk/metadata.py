"""`metadata`: a run's JSON metadata, changed from inside the task.

Inside a run, changes apply at once to a local copy kept on the run (so `get`/`current` see
them) and the whole dict is sent to the daemon at most every 500 ms while it has unsent
changes, and always before a wait or the completion. In app code (no run) the operations
apply to a process-local dict that is never sent, so code shared with tests keeps working.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .. import packets
from .context import current_run

_local: dict[str, Any] = {}
_local_lock = threading.Lock()


def _apply(operations: list[dict[str, Any]]) -> None:
    global _local
    state = current_run()
    if state is not None:
        state.update_metadata(operations)
        return
    with _local_lock:
        _local = packets.apply_metadata_operations(_local, operations)


def _snapshot() -> dict[str, Any]:
    state = current_run()
    if state is None:
        with _local_lock:
            return copy.deepcopy(_local)
    with state.lock:
        return copy.deepcopy(state.metadata)


class Metadata:
    """The `metadata` object. Values must be JSON-serializable. Operations follow Trigger.dev:
    `increment` on a missing or non-number key starts from 0; `append` turns a scalar into a
    list; `remove` drops every equal item from a list."""

    def set(self, key: str, value: Any) -> Metadata:
        _apply([{"type": "set", "key": key, "value": value}])
        return self

    def delete(self, key: str) -> Metadata:
        _apply([{"type": "delete", "key": key}])
        return self

    def increment(self, key: str, value: float = 1) -> Metadata:
        _apply([{"type": "increment", "key": key, "value": value}])
        return self

    def decrement(self, key: str, value: float = 1) -> Metadata:
        _apply([{"type": "increment", "key": key, "value": -value}])
        return self

    def append(self, key: str, value: Any) -> Metadata:
        _apply([{"type": "append", "key": key, "value": value}])
        return self

    def remove(self, key: str, value: Any) -> Metadata:
        _apply([{"type": "remove", "key": key, "value": value}])
        return self

    def replace(self, value: dict[str, Any]) -> Metadata:
        """Replace the whole dict."""
        if not isinstance(value, dict):
            raise TypeError("metadata.replace takes a dict")
        ops: list[dict[str, Any]] = [{"type": "delete", "key": k} for k in _snapshot()]
        ops += [{"type": "set", "key": k, "value": v} for k, v in value.items()]
        _apply(ops)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return _snapshot().get(key, default)

    def current(self) -> dict[str, Any]:
        """A copy of the whole dict."""
        return _snapshot()

    def stream(self, key: str, source: Any) -> Any:
        """Trigger.dev's pre-4.1 name for `streams.pipe(key, source)`."""
        from .streams import streams  # streams reads the run as metadata does: no cycle at use

        return streams.pipe(key, source)

    async def flush(self) -> None:
        """Send pending changes now (inside a run; a no-op elsewhere)."""
        state = current_run()
        if state is not None:
            await state.meta.flush()


metadata = Metadata()
