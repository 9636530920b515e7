"""Stateless credentials derived from the daemon's secret: they survive a daemon restart,
so a task process that outlived its daemon can keep talking to the next one."""

from __future__ import annotations

import functools
import hashlib
import hmac

#: HMAC's key pads (RFC 2104) as byte translation tables: the key XOR 0x36, the key XOR 0x5c
_INNER = bytes(b ^ 0x36 for b in range(256))
_OUTER = bytes(b ^ 0x5c for b in range(256))
_BLOCK = 64  # SHA-256's block size


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states that have taken `secret`'s inner and outer pads (RFC 2104)."""
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER)), hashlib.sha256(key.translate(_OUTER))


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under `secret`, as `hmac.digest(secret, message, "sha256")`
    gives it, from the key's padded states hashed once (`_keyed`): each trigger answer signs a
    token and each assignment a run token, and OpenSSL 3's one-shot HMAC sets up its MAC anew
    for every call — ~20 µs a call in the daemon's loop, against a few for two hash copies
    (issue #13)."""
    inner, outer = _keyed(secret)
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


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
