"""Payloads, outputs and metadata travel as (string, data type), as in Trigger.dev:
`application/json`, `application/super+json` (what the TypeScript SDK sends:
`{"json": v, "meta": …}`), `text/plain`. Shared by the SDK, the runtime and the daemon; imports
nothing of either."""

from __future__ import annotations

from typing import Any

from .limits import loads
from .strict_json import dumps_js

JSON = "application/json"
SUPER_JSON = "application/super+json"
TEXT = "text/plain"

_KEYED_OPERATIONS = frozenset({"set", "delete", "increment", "append", "remove"})


def encode(value: Any) -> tuple[str | None, str]:
    """A Python value as a packet. None becomes an absent payload. NaN and ±Infinity become
    null and a lone surrogate U+FFFD, as JavaScript's `JSON.stringify` writes them (the daemon
    refuses them: strict_json.py)."""
    if value is None:
        return None, JSON
    return dumps_js(value, default=_default), JSON


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def decode(data: str | None, data_type: str | None) -> Any:
    """The plain JSON value of a packet (SuperJSON is unwrapped; its `meta` is dropped: dates
    stay ISO strings)."""
    if data is None or data == "":
        return None
    if data_type == TEXT:
        return data
    value = loads(data)  # ValueError also for JSON nested past limits.MAX_JSON_DEPTH
    if data_type == SUPER_JSON and isinstance(value, dict) and "json" in value:
        return value["json"]
    return value


def apply_metadata_operations(metadata: dict[str, Any],
                              operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply Trigger.dev metadata operations (`set`, `delete`, `increment`, `append`, `remove`,
    `update`). Every operation but `update` names its string `key`: the daemon checks that
    (`check_operations`), and the SDK always sends one."""
    out = dict(metadata)
    for op in operations:
        kind = op.get("type")
        if kind == "update":
            value = op.get("value")
            if isinstance(value, dict):
                out.update(value)
            continue
        if kind not in _KEYED_OPERATIONS:
            continue
        key: str = op["key"]
        if kind == "set":
            out[key] = op.get("value")
        elif kind == "delete":
            out.pop(key, None)
        elif kind == "increment":
            current = out.get(key, 0)
            out[key] = (current if isinstance(current, int | float) else 0) + op.get("value", 1)
        elif kind == "append":
            current = out.get(key)
            items = (list(current) if isinstance(current, list)
                     else [] if current is None else [current])
            items.append(op.get("value"))
            out[key] = items
        elif kind == "remove":
            current = out.get(key)
            if isinstance(current, list):
                out[key] = [v for v in current if v != op.get("value")]
    return out
