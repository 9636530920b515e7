"""Retry policy: exponential backoff with factor, bounds and jitter (Trigger.dev's defaults),
and the machine a retry after an out-of-memory failure runs on (Trigger.dev's `outOfMemory`).

A run's policy is, first found: its task's own `retry`, then the `[retry]` of the project its
version was registered from, then the built-in default (3 attempts, factor 2, 1 s to 60 s,
randomized); a trigger's `max_attempts` replaces the policy's attempts for that run."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..machines import MACHINES, NEXT, is_out_of_memory, out_of_memory_machine
from ..store.models import Run, Version

#: attempts of a task with no policy anywhere (Trigger.dev's default config says 3 too)
DEFAULT_MAX_ATTEMPTS = 3
#: where a run's policy came from (`retryPolicy.source` in the API's run)
FROM_TASK, FROM_PROJECT, FROM_DEFAULT, FROM_TRIGGER = "task", "project", "default", "trigger"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    factor: float = 2.0
    min_timeout_s: float = 1.0
    max_timeout_s: float = 60.0
    randomize: bool = True
    #: a preset or "next": where a retry after running out of memory goes (None: same machine)
    out_of_memory_machine: str | None = None
    #: FROM_TASK, FROM_PROJECT or FROM_DEFAULT: whose policy this is
    source: str = FROM_DEFAULT
    #: FROM_TRIGGER when the run's trigger set max_attempts, else the same as `source`
    max_attempts_source: str = FROM_DEFAULT

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, max_attempts: int | None = None,
                  source: str = FROM_DEFAULT) -> RetryPolicy:
        data = dict(data or {})
        names = ("max_attempts", "factor", "min_timeout_s", "max_timeout_s", "randomize")
        fields: dict[str, Any] = {k: data[k] for k in names if data.get(k) is not None}
        oom = data.get("out_of_memory") or data.get("outOfMemory")
        machine = oom.get("machine") if isinstance(oom, dict) else None
        # checked when the version was indexed; anything else here is ignored, not fatal mid-retry
        if machine == NEXT or machine in MACHINES:
            fields["out_of_memory_machine"] = machine
        fields["source"] = fields["max_attempts_source"] = source
        if max_attempts is not None:
            fields["max_attempts"], fields["max_attempts_source"] = max_attempts, FROM_TRIGGER
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        """The API's `retryPolicy` of a run (Trigger.dev's retry option names, times in ms)."""
        out: dict[str, Any] = {"maxAttempts": self.max_attempts, "factor": self.factor,
                               "minTimeoutInMs": round(self.min_timeout_s * 1000),
                               "maxTimeoutInMs": round(self.max_timeout_s * 1000),
                               "randomize": self.randomize,
                               "source": self.source, "maxAttemptsSource": self.max_attempts_source}
        if self.out_of_memory_machine is not None:
            out["outOfMemory"] = {"machine": self.out_of_memory_machine}
        return out

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


def run_policy(run: Run, version: Version | None) -> RetryPolicy:
    """The policy `run` is retried by; `version` is the run's own version (None if it has none
    yet)."""
    task = version.task(run.task_id) if version is not None else None
    if task is not None and task.retry:
        return RetryPolicy.from_dict(task.retry, run.max_attempts, FROM_TASK)
    if version is not None and version.defaults.retry:
        return RetryPolicy.from_dict(version.defaults.retry, run.max_attempts, FROM_PROJECT)
    return RetryPolicy.from_dict(None, run.max_attempts, FROM_DEFAULT)
