"""Machine presets (Trigger.dev's names and sizes) and the out-of-memory retry rule.

Shared by the SDK (a task's `machine` and `Retry(out_of_memory=...)` are checked when the
module is imported, so a typo fails indexing), the engine (trigger options; which machine a
retry after an out-of-memory failure runs on) and the docker executor (CPU and memory limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ValidationError


@dataclass(frozen=True)
class Machine:
    name: str
    cpus: float
    memory_gb: float

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1024**3)


#: smallest first: "bigger" below means later in this order (more memory, never less CPU)
MACHINES: dict[str, Machine] = {m.name: m for m in (
    Machine("micro", 0.25, 0.25), Machine("small-1x", 0.5, 0.5), Machine("small-2x", 1, 1),
    Machine("medium-1x", 1, 2), Machine("medium-2x", 2, 4), Machine("large-1x", 4, 8),
    Machine("large-2x", 8, 16))}
MACHINE_NAMES = tuple(MACHINES)
DEFAULT_MACHINE = "small-1x"
#: `Retry(out_of_memory={"machine": NEXT})`: each out-of-memory retry moves one preset up
NEXT = "next"
#: error names that mean "ran out of memory": the docker executor's OOM kill, and Python's
#: own MemoryError raised inside the task
OOM_ERROR_NAMES = frozenset({"OutOfMemoryError", "MemoryError"})


def machine_for(name: str | None) -> Machine:
    """The preset called `name`; the default for None (or a name that is not a preset)."""
    return MACHINES.get(name or DEFAULT_MACHINE, MACHINES[DEFAULT_MACHINE])


def next_machine(name: str | None) -> str | None:
    """The next bigger preset, or None at the top."""
    index = MACHINE_NAMES.index(machine_for(name).name)
    return MACHINE_NAMES[index + 1] if index + 1 < len(MACHINE_NAMES) else None


def check_machine(value: Any, what: str = "machine") -> str:
    """`value` if it names a preset; a ValidationError naming the presets otherwise."""
    if not isinstance(value, str) or value not in MACHINES:
        raise ValidationError(f"Invalid {what} {value!r}: use one of {', '.join(MACHINE_NAMES)}")
    return value


def parse_out_of_memory(value: Any, what: str = "retry out_of_memory") -> dict[str, str] | None:
    """Validate Trigger.dev's `outOfMemory` retry option: None, or `{"machine": PRESET}` with a
    preset name or "next". Returns a new `{"machine": ...}` dict."""
    if value is None:
        return None
    presets = f"{', '.join(MACHINE_NAMES)}, or {NEXT!r} (the next bigger preset)"
    if not isinstance(value, dict) or set(value) != {"machine"}:
        raise ValidationError(f"{what} must be {{\"machine\": PRESET}} with PRESET one of "
                              f"{presets}; got {value!r}")
    machine = value["machine"]
    if machine != NEXT and (not isinstance(machine, str) or machine not in MACHINES):
        raise ValidationError(f"Invalid {what} machine {machine!r}: use one of {presets}")
    return {"machine": machine}


def is_out_of_memory(error: dict[str, Any] | None) -> bool:
    return error is not None and error.get("name") in OOM_ERROR_NAMES


def out_of_memory_machine(current: str | None, wanted: str) -> str | None:
    """The machine a retry after running out of memory on `current` moves to, per the policy's
    `wanted` (a preset or "next"); None when that is not bigger than `current` (already there,
    or at the top), so the retry stays on `current`."""
    here = machine_for(current).name
    target = next_machine(here) if wanted == NEXT else wanted
    if (target is None or target not in MACHINES
            or MACHINE_NAMES.index(target) <= MACHINE_NAMES.index(here)):
        return None
    return target
