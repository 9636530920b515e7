"""A task's retry policy, as Trigger.dev's `retry` option (exponential backoff with jitter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how fast a failing task is attempted again.

    Attempt n (n ≥ 1) waits `min(max_timeout_s, min_timeout_s * factor ** (n - 1))` seconds
    before the next, randomized by the daemon when `randomize`. `max_attempts` counts the
    first attempt: `max_attempts=1` means no retries. Serialized by `to_dict()` into the task
    manifest with exactly these keys.
    """

    max_attempts: int = 3
    factor: float = 2
    min_timeout_s: float = 1
    max_timeout_s: float = 60
    randomize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValidationError(f"Retry max_attempts must be an integer ≥ 1, got {self.max_attempts!r}")
        if self.factor <= 0 or self.min_timeout_s < 0 or self.max_timeout_s < self.min_timeout_s:
            raise ValidationError("Retry needs factor > 0 and 0 ≤ min_timeout_s ≤ max_timeout_s")

    def to_dict(self) -> dict[str, Any]:
        return {"max_attempts": self.max_attempts, "factor": self.factor,
                "min_timeout_s": self.min_timeout_s, "max_timeout_s": self.max_timeout_s,
                "randomize": self.randomize}

    @classmethod
    def coerce(cls, value: Retry | dict[str, Any] | None) -> Retry | None:
        """Accept a Retry, a dict of its fields, or None (the project default applies)."""
        if value is None or isinstance(value, Retry):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise ValidationError(f"retry must be a Retry(...) or a dict, got {type(value).__name__}")
