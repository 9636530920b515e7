"""Stateless credentials derived from the daemon's secret: they survive a daemon restart,
so a task process that outlived its daemon can keep talking to the next one."""

from __future__ import annotations

import functools
import hashlib
import hmac


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def worker_token(secret: str, worker_id: str) -> str:
    return _sign(secret, f"worker:{worker_id}")


@functools.lru_cache(maxsize=4096)  # made for the assignment, checked at its waits and its end
def run_token(secret: str, run_id: str, attempt: int) -> str:
    return _sign(secret, f"run:{run_id}:{attempt}")


def project_key(secret: str, ref: str) -> str:
    """The secret key of one project: it scopes every management route to that project (the
    daemon's own key reaches all of them). Shaped like Trigger.dev's dev keys."""
    return "tr_dev_" + _sign(secret, f"project:{ref}")[:40]


def callback_hash(secret: str, waitpoint_id: str) -> str:
    return _sign(secret, waitpoint_id)


def check(expected: str, given: str | None) -> bool:
    """Constant-time comparison."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
