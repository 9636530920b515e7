"""Prefixed, sortable ids (`run_…`, `waitpoint_…`) as Trigger.dev shows them."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


#: every two-character string, by value (0 … 36² − 1): a digit pair per divmod, so an id costs
#: 11 divmods rather than 21 (a no-op run makes four ids, issue #13)
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
#: a random byte → one of the 36 characters (`bytes.translate`): 256 = 7 × 36 + 4, so the first
#: four characters are drawn 8 times in 256 rather than 7; 12 of them carry ~61.9 bits, as the
#: 12 low base-36 digits of a random 64-bit number did
_RANDOM_CHAR = bytes(ord(_ALPHABET[b % 36]) for b in range(256))


def _base36(n: int, width: int) -> str:
    """The `width` low base-36 digits of `n`, zero-padded."""
    out = []
    if width % 2:
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    for _ in range(width // 2):
        n, r = divmod(n, 1296)
        out.append(_PAIRS[r])
    return "".join(reversed(out))


#: the last millisecond an id was made in, and its 9 characters (one tuple: a thread reads both)
_last_ms: tuple[int, str] = (-1, "")


def new_id(prefix: str) -> str:
    """`prefix_` + 9 chars of milliseconds + 12 random chars: unique and time-ordered. The
    milliseconds are spelled once per millisecond, the random characters straight from random
    bytes: ~1 µs an id where the two base-36 conversions took ~5 (issue #13)."""
    global _last_ms
    ms = int(time.time() * 1000)
    last = _last_ms
    if ms != last[0]:
        last = _last_ms = (ms, _base36(ms, 9))
    return f"{prefix}_{last[1]}{os.urandom(12).translate(_RANDOM_CHAR).decode()}"


def attempt_id(run_id: str, number: int) -> str:
    """Attempt `number` of run `run_id`'s id, `attempt_<the run's id without run_>_<number>`:
    derived, so that a store may key attempts by run and number alone (issue #17)."""
    return f"attempt_{run_id.removeprefix('run_')}_{number}"


def attempt_key(attempt: str) -> tuple[str, int] | None:
    """(run id, number) of an `attempt_id`; None for an id that is not one."""
    body, _, number = attempt.removeprefix("attempt_").rpartition("_")
    if not body or not number.isdigit():
        return None
    return f"run_{body}", int(number)
