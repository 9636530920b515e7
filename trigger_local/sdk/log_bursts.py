"""Cutting a run's buffered log lines into bursts the daemon takes.

The daemon refuses a request body (or channel frame) over its payload limit
(`payload_limit_bytes`, plus a fixed allowance for the envelope) with 413; a refused burst's
lines would be lost. So each burst holds lines that together encode to at most the limit, and
one line over it alone is cut to fit, its message ending with a marker that says how much was
cut. The daemon gives its limit to its task processes in `PAYLOAD_LIMIT_ENV`
(executors/assignments.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from ..errors import PAYLOAD_LIMIT_SETTING
from ..log_spool import encodable

PAYLOAD_LIMIT_ENV = PAYLOAD_LIMIT_SETTING
#: the daemon's default payload limit (config.py), when it did not say
DEFAULT_LIMIT = 3 * 1024 * 1024
#: room kept in a cut line for its other fields and the marker
_CUT_ROOM = 1024
#: ASCII, as the runtime sends a burst (strict_json.dumps_js): a non-ASCII character is a
#: \\u escape of 6 (or 12) bytes there
_ENCODER = json.JSONEncoder(default=str)


def limit() -> int:
    """The daemon's payload limit, as it gave it to this process."""
    try:
        return max(int(os.environ.get(PAYLOAD_LIMIT_ENV) or DEFAULT_LIMIT), 2 * _CUT_ROOM)
    except ValueError:
        return DEFAULT_LIMIT


def size(entry: dict[str, Any]) -> int:
    return len(_ENCODER.encode(entry)) + 1  # and its comma


def cut(entry: dict[str, Any], budget: int) -> dict[str, Any]:
    """`entry` made to encode to at most `budget` bytes: its message cut, with a marker."""
    message = str(entry.get("message", ""))
    whole = len(message.encode("utf-8", "replace"))
    out = dict(entry)
    if size({**out, "message": ""}) > budget // 2:  # its attributes alone are too large
        out["attributes"] = {"trigger.truncated": "attributes dropped: over the payload limit"}
    if size(out) <= budget or not message:  # the attributes were too large: nothing to cut
        return out  # from the message, and no marker saying "0 bytes" cut
    keep = max(0, min(whole - 1, budget - size({**out, "message": ""}) - _CUT_ROOM))
    # JSON may escape a character to 6 bytes: cut by the encoded size, shrinking until it fits
    while True:
        head = message.encode("utf-8", "replace")[:keep].decode("utf-8", "ignore")
        out["message"] = f"{head}… [truncated: {whole - len(head.encode('utf-8', 'replace'))} " \
                         "bytes over the daemon's payload limit]"
        if size(out) <= budget or keep == 0:
            return out
        keep //= 2


def bursts(entries: list[dict[str, Any]], budget: int) -> Iterator[list[dict[str, Any]]]:
    """`entries` in order, in runs that encode to at most `budget` bytes each."""
    burst: list[dict[str, Any]] = []
    used = 0
    for entry in entries:
        try:
            n = size(entry)
        except (TypeError, ValueError):  # JSON cannot hold its attributes: said as text
            entry = encodable(entry)
            n = size(entry)
        if n > budget:
            entry = cut(entry, budget)
            n = size(entry)
        if burst and used + n > budget:
            yield burst
            burst, used = [], 0
        burst.append(entry)
        used += n
    if burst:
        yield burst
