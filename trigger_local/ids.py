"""Prefixed, sortable ids (`run_…`, `waitpoint_…`) as Trigger.dev shows them."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


#: every two-character string, by value (0 … 36² − 1): a digit pair per divmod, so an id costs
#: 11 divmods rather than 21 (a no-op run makes four ids, issue #13)
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


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


def new_id(prefix: str) -> str:
    """`prefix_` + 9 chars of milliseconds + 12 random chars: unique and time-ordered."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(8), "big")
    return f"{prefix}_{_base36(ms, 9)}{_base36(rand, 12)}"


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
