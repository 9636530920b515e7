"""Debounce: repeated triggers of one task with the same debounce key, while its run has not
started, collapse into that run.

The first trigger creates the run DELAYED by `delay`; each later one pushes its start to
`now + delay` (never past `first trigger + max_delay`) and answers the same run id. In
`trailing` mode the run takes the latest payload; in `leading` mode (the default, as in
Trigger.dev) it keeps the first. Once the run has left DELAYED, the key starts a new run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..durations import parse_duration
from ..errors import ValidationError
from ..store.models import DELAYED, Run
from ..strict_json import shown
from .events import RunDebounced
from .runs import move
from .unit import Tx

MODES = ("leading", "trailing")
MAX_KEY_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Debounce:
    """Trigger.dev's `debounce` option, checked."""

    key: str
    delay_s: float
    mode: str = "leading"
    max_delay_s: float | None = None


def parse_debounce(value: Any) -> Debounce | None:
    """`{"key", "delay", "mode"?, "maxDelay"?}` as the API received it; ValidationError."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("debounce must be an object like {key, delay, mode?, maxDelay?}")
    key = value.get("key")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"debounce.key must be a string of 1 to {MAX_KEY_LENGTH} characters")
    if value.get("delay") is None:
        raise ValidationError("debounce.delay is required (e.g. '5s')")
    delay_s = parse_duration(value["delay"], what="debounce.delay")
    mode = value.get("mode") or "leading"
    if mode not in MODES:
        raise ValidationError(f"Invalid debounce.mode {shown(mode)}: use leading or trailing")
    max_delay = value.get("max_delay", value.get("maxDelay"))
    max_delay_s = parse_duration(max_delay, what="debounce.maxDelay") if max_delay is not None \
        else None
    return Debounce(key=key, delay_s=delay_s, mode=mode, max_delay_s=max_delay_s)


async def pending_run(tx: Tx, project: str | None, task_id: str, debounce: Debounce,
                      payload: str | None, payload_type: str) -> Run | None:
    """The pending run this trigger collapses into (its start pushed, and in `trailing` mode
    its payload replaced), or None: then a new run is created, DELAYED until
    `delayed_until(...)`. Keys are per project."""
    found = await tx.debounces.get(_key_project(project), task_id, debounce.key)
    run = await tx.runs.get(found[0]) if found else None
    if found is None or run is None or run.status != DELAYED:
        return None
    until = tx.now + debounce.delay_s
    if debounce.max_delay_s is not None:
        until = min(until, found[1] + debounce.max_delay_s)
    changes: dict[str, Any] = {"delay_until": max(until, run.delay_until or until)}
    if debounce.mode == "trailing":
        changes.update(payload=payload, payload_type=payload_type)
    return await move(tx, run, DELAYED, event=RunDebounced, description="debounced", **changes)


def delayed_until(now: float, debounce: Debounce, delay_until: float | None) -> float:
    """When the first run of a debounce key starts: after the debounce delay (or later)."""
    return max(delay_until or 0.0, now + debounce.delay_s)


async def remember(tx: Tx, project: str | None, task_id: str, debounce: Debounce,
                   run: Run) -> None:
    await tx.debounces.set(_key_project(project), task_id, debounce.key, run.id, tx.now)


def _key_project(project: str | None) -> str:
    # a run whose project is not known yet (nothing indexed has its task) keeps its keys apart
    return project if project is not None else ""
