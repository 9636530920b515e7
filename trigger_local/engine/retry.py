"""Retry policy: exponential backoff with factor, bounds and jitter (Trigger.dev's defaults)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 1
    factor: float = 2.0
    min_timeout_s: float = 1.0
    max_timeout_s: float = 60.0
    randomize: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, max_attempts: int | None = None) -> RetryPolicy:
        data = dict(data or {})
        fields = {k: data[k] for k in ("max_attempts", "factor", "min_timeout_s", "max_timeout_s", "randomize")
                  if data.get(k) is not None}
        policy = cls(**fields)
        if max_attempts is not None:
            policy = cls(**{**fields, "max_attempts": max_attempts})
        return policy

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = self.min_timeout_s * (self.factor ** max(0, attempt - 1))
        if self.randomize:
            base *= 1 + (rng or random).random()
        return max(0.0, min(base, self.max_timeout_s))
