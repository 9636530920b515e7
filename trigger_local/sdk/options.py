"""What a task definition and a trigger share: named queues, idempotency keys, and the SDK's
trigger options as they go on the wire (Trigger.dev's camelCase)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..durations import parse_duration
from ..errors import ValidationError
from ..limits import MAX_CONCURRENCY_LIMIT, name_problem
from ..ratelimit import parse_rate_limit
from .context import current_run


@dataclass(frozen=True, slots=True)
class Queue:
    """A named queue that tasks share; `concurrency_limit=None` means no limit of its own."""

    name: str
    concurrency_limit: int | None = None
    #: {"limit", "period_s", "per_key"} (see trigger_local.ratelimit), or None
    rate_limit: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # also `@task(queue=" ")`, which makes one from the string: the daemon refuses an
        # empty or blank queue name in a trigger, and a definition must not hold one either
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError(f"A queue needs a name that is not empty or only whitespace, "
                                  f"not {self.name!r}"[:200])
        if (problem := name_problem(self.name)) is not None:
            raise ValidationError(f"The name of queue {self.name[:100]!r} {problem}")


def queue(name: str, concurrency_limit: int | None = None,
          rate_limit: dict[str, Any] | None = None) -> Queue:
    """A shared queue: pass the same object as `queue=` to every task that should share it."""
    if concurrency_limit is not None and (isinstance(concurrency_limit, bool)
                                          or not isinstance(concurrency_limit, int)
                                          or not 0 <= concurrency_limit <= MAX_CONCURRENCY_LIMIT):
        raise ValidationError(f"Queue {name!r}: concurrency_limit must be an integer from 0 to "
                              f"{MAX_CONCURRENCY_LIMIT}")
    return Queue(name, concurrency_limit, parse_rate_limit(rate_limit))


# -- idempotency keys --------------------------------------------------------------------
class IdempotencyKey(str):
    """A hashed idempotency key that remembers the user's key and scope."""

    key: str
    scope: str

    def __new__(cls, hashed: str, key: str, scope: str) -> IdempotencyKey:
        obj = super().__new__(cls, hashed)
        obj.key, obj.scope = key, scope
        return obj


def create_idempotency_key(key: str | list[str], scope: str = "run") -> IdempotencyKey:
    """Hash a key as Trigger.dev's SDK does: sha256 hex of the key (a list joined with "-"),
    with the scope's suffix inside a task: `run` appends the run id, `attempt` the run id and
    attempt number, `global` nothing. Outside a task no suffix is added. A 64-char key is
    taken as already hashed."""
    if scope not in ("run", "attempt", "global"):
        raise ValidationError(f"Invalid idempotency key scope {scope!r}: use run, attempt or "
                              "global")
    if isinstance(key, IdempotencyKey):
        return key
    parts = [str(p) for p in key] if isinstance(key, list | tuple) else [str(key)]
    joined = "-".join(parts)
    if len(joined) == 64 and len(parts) == 1:
        return IdempotencyKey(joined, joined, scope)
    state = current_run()
    if state is not None and scope == "run":
        parts.append(state.run_id)
    elif state is not None and scope == "attempt":
        parts += [state.run_id, str(state.attempt)]
    return IdempotencyKey(hashlib.sha256("-".join(parts).encode()).hexdigest(), joined, scope)


class _IdempotencyKeys:
    """`idempotency_keys.create(key, scope="run")`, as in Trigger.dev."""

    @staticmethod
    def create(key: str | list[str], scope: str = "run") -> IdempotencyKey:
        return create_idempotency_key(key, scope)


idempotency_keys = _IdempotencyKeys()

# -- trigger options ---------------------------------------------------------------------
TRIGGER_OPTIONS = ("queue", "concurrency_key", "delay", "ttl", "idempotency_key",
                   "idempotency_key_ttl", "tags", "max_attempts", "max_duration", "priority",
                   "machine", "metadata", "debounce")
_CAMEL = {"concurrency_key": "concurrencyKey", "idempotency_key_ttl": "idempotencyKeyTTL",
          "max_attempts": "maxAttempts", "priority": "priority", "machine": "machine",
          "metadata": "metadata", "ttl": "ttl"}


def trigger_options(options: dict[str, Any]) -> dict[str, Any]:
    """snake_case SDK options → Trigger.dev's camelCase trigger options. Unknown names raise
    TypeError (a typo must not be silently ignored); None values are left out."""
    unknown = set(options) - set(TRIGGER_OPTIONS)
    if unknown:
        raise TypeError(f"Unknown trigger option(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(TRIGGER_OPTIONS)}")
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "queue":
            out["queue"] = {"name": value.name if isinstance(value, Queue) else str(value)}
        elif name == "delay":
            out["delay"] = _time_option(value)
        elif name == "idempotency_key":
            hashed = create_idempotency_key(value)
            out["idempotencyKey"] = str(hashed)
            out["idempotencyKeyOptions"] = {"key": hashed.key, "scope": hashed.scope}
        elif name == "tags":
            out["tags"] = [value] if isinstance(value, str) else list(value)
        elif name == "debounce":
            out["debounce"] = _debounce_option(value)
        elif name == "max_duration":
            out["maxDuration"] = parse_duration(value, what="max_duration")
        else:
            out[_CAMEL[name]] = value
    return out


def _debounce_option(value: Any) -> Any:
    """`{key, delay, mode?, max_delay?}` → Trigger.dev's `{key, delay, mode?, maxDelay?}`."""
    if not isinstance(value, dict):
        raise ValidationError("debounce must be a dict like {'key': ..., 'delay': '5s'}")
    out = {k: _time_option(v) if k == "delay" else v for k, v in value.items() if k != "max_delay"}
    if value.get("max_delay") is not None:
        out["maxDelay"] = _time_option(value["max_delay"])
    return out


def _time_option(value: Any) -> Any:
    """A delay as Trigger.dev takes it: a duration string or an ISO date."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}s"
    return value
