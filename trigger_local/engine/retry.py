"""Retry policy: exponential backoff with factor, bounds and jitter (Trigger.dev's defaults),
and the machine a retry after an out-of-memory failure runs on (Trigger.dev's `outOfMemory`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..machines import MACHINES, NEXT, is_out_of_memory, out_of_memory_machine


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 1
    factor: float = 2.0
    min_timeout_s: float = 1.0
    max_timeout_s: float = 60.0
    randomize: bool = True
    #: a preset or "next": where a retry after running out of memory goes (None: same machine)
    out_of_memory_machine: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, max_attempts: int | None = None) -> RetryPolicy:
        data = dict(data or {})
        fields: dict[str, Any] = {k: data[k] for k in ("max_attempts", "factor", "min_timeout_s", "max_timeout_s",
                                                        "randomize") if data.get(k) is not None}
        oom = data.get("out_of_memory") or data.get("outOfMemory")
        machine = oom.get("machine") if isinstance(oom, dict) else None
        # checked when the version was indexed; anything else here is ignored, not fatal mid-retry
        if machine == NEXT or machine in MACHINES:
            fields["out_of_memory_machine"] = machine
        if max_attempts is not None:
            fields["max_attempts"] = max_attempts
        return cls(**fields)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = self.min_timeout_s * (self.factor ** max(0, attempt - 1))
        if self.randomize:
            base *= 1 + (rng or random).random()
        return max(0.0, min(base, self.max_timeout_s))

    def retry_machine(self, error: dict[str, Any] | None, machine: str | None) -> str | None:
        """The bigger machine the retry after `error` on `machine` runs on, or None to stay:
        only an out-of-memory error with an `out_of_memory` policy moves a run, and only up."""
        if self.out_of_memory_machine is None or not is_out_of_memory(error):
            return None
        return out_of_memory_machine(machine, self.out_of_memory_machine)
