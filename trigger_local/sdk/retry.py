"""A task's retry policy, as Trigger.dev's `retry` option (exponential backoff with jitter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ..limits import MAX_ATTEMPTS, MAX_DURATION_S
from ..machines import parse_out_of_memory

#: the keys of a retry policy, in code (`Retry(...)`, `retry={...}`) and in trigger.toml's `[retry]`
KEYS = frozenset({"max_attempts", "factor", "min_timeout_s", "max_timeout_s", "randomize",
                  "out_of_memory"})


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how fast a failing task is attempted again.

    Attempt n (n ≥ 1) waits `min(max_timeout_s, min_timeout_s * factor ** (n - 1))` seconds
    before the next, randomized by the daemon when `randomize`. `max_attempts` counts the
    first attempt: `max_attempts=1` means no retries.

    `out_of_memory={"machine": "medium-1x"}` (Trigger.dev's `outOfMemory`): when an attempt
    fails because it ran out of memory (the docker executor's OOM kill, or a MemoryError), the
    retry runs on that preset if it is bigger than the run's machine; `{"machine": "next"}`
    moves one preset up on each such retry. Retries still count against `max_attempts`.
    Unknown presets raise ValidationError when the task is defined (so indexing fails).

    Serialized by `to_dict()` into the task manifest with exactly these keys
    (`out_of_memory` only when set).
    """

    max_attempts: int = 3
    factor: float = 2
    min_timeout_s: float = 1
    max_timeout_s: float = 60
    randomize: bool = True
    out_of_memory: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValidationError(f"Retry max_attempts must be an integer from 1 to "
                                  f"{MAX_ATTEMPTS}, got {self.max_attempts!r}")
        for name in ("factor", "min_timeout_s", "max_timeout_s"):
            value = getattr(self, name)
            bounds = (f"above 0 and at most {MAX_DURATION_S}" if name == "factor"  # 0: no wait
                      else f"from 0 to {MAX_DURATION_S}")
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not 0 <= value <= MAX_DURATION_S or (value == 0 and name == "factor")):
                raise ValidationError(f"Retry {name} must be a number {bounds}, got {value!r}")
        if not isinstance(self.randomize, bool):
            raise ValidationError(f"Retry randomize must be true or false, got {self.randomize!r}")
        if self.max_timeout_s < self.min_timeout_s:
            raise ValidationError(f"Retry max_timeout_s must be at least min_timeout_s, got "
                                  f"{self.max_timeout_s!r} < {self.min_timeout_s!r}")
        object.__setattr__(self, "out_of_memory", parse_out_of_memory(self.out_of_memory,
                                                                      "Retry out_of_memory"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_attempts": self.max_attempts, "factor": self.factor,
                               "min_timeout_s": self.min_timeout_s,
                               "max_timeout_s": self.max_timeout_s, "randomize": self.randomize}
        if self.out_of_memory is not None:
            out["out_of_memory"] = dict(self.out_of_memory)
        return out

    @classmethod
    def coerce(cls, value: Retry | dict[str, Any] | None) -> Retry | None:
        """Accept a Retry, a dict of its fields, or None (the project default applies)."""
        if value is None or isinstance(value, Retry):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - KEYS)
            if unknown:
                raise ValidationError(f"Unknown retry keys: {', '.join(map(str, unknown))} "
                                      f"(known: {', '.join(sorted(KEYS))})")
            return cls(**value)
        raise ValidationError(f"retry must be a Retry(...) or a dict, got {type(value).__name__}")
