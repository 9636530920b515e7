"""Prefixed, sortable ids (`run_…`, `waitpoint_…`) as Trigger.dev shows them."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """`prefix_` + 9 chars of milliseconds + 12 random chars: unique and time-ordered."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(8), "big")
    return f"{prefix}_{_base36(ms, 9)}{_base36(rand, 12)}"
