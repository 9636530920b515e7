"""Stateless credentials derived from the daemon's secret: they survive a daemon restart,
so a task process that outlived its daemon can keep talking to the next one."""

from __future__ import annotations

import functools
import hashlib
import hmac


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 that has taken `secret` and nothing else, copied for each message."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under `secret`, as `hmac.digest(secret, message, "sha256")`
    gives it, from a copy of the keyed MAC (`_keyed`): each trigger answer signs a token and
    each assignment a run token, and OpenSSL 3's one-shot HMAC sets up its MAC anew for every
    call — ~20 µs a call in the daemon's loop (issue #13)."""
    mac = _keyed(secret).copy()
    mac.update(message)
    return mac.digest()


def _sign(secret: str, message: str) -> str:
    return hmac_sha256(secret, message.encode()).hex()


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
