"""Debounce: repeated triggers of one task with the same debounce key, while its run has not
started, collapse into that run.

The first trigger creates the run DELAYED by `delay`; each later one pushes its start to
`now + delay` (never past `first trigger + max_delay`) and answers the same run id. In
`trailing` mode the run takes the latest payload; in `leading` mode (the default, as in
Trigger.dev) it keeps the first. Once the run has left DELAYED, the key starts a new run.
"""

from __future__ import annotations

from typing import Any

from ..durations import parse_duration
from ..errors import ValidationError
from ..store.models import DELAYED, Run
from .base import EngineBase, Tx

MODES = ("leading", "trailing")
MAX_KEY_LENGTH = 512


def parse_debounce(value: Any) -> dict[str, Any] | None:
    """`{"key", "delay", "mode"?, "max_delay"?}` → `{"key", "delay_s", "mode", "max_delay_s"}`."""
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
        raise ValidationError(f"Invalid debounce.mode {mode!r}: use leading or trailing")
    max_delay = value.get("max_delay", value.get("maxDelay"))
    max_delay_s = parse_duration(max_delay, what="debounce.maxDelay") if max_delay is not None else None
    return {"key": key, "delay_s": delay_s, "mode": mode, "max_delay_s": max_delay_s}


class DebounceMixin(EngineBase):
    async def _debounce(self, tx: Tx, project: str | None, task_id: str, debounce: dict[str, Any],
                        payload: str | None, payload_type: str, fields: dict[str, Any]) -> Run | None:
        """The pending run this trigger collapses into (moved and updated), or None: then the
        new run is created DELAYED by the debounce delay (set in `fields`). Keys are per project."""
        found = await tx.ops.get_debounce(_key_project(project), task_id, debounce["key"])
        run = await tx.ops.get_run(found[0]) if found else None
        if found is not None and run is not None and run.status == DELAYED:
            until = tx.now + debounce["delay_s"]
            if debounce["max_delay_s"] is not None:
                until = min(until, found[1] + debounce["max_delay_s"])
            changes: dict[str, Any] = {"delay_until": max(until, run.delay_until or until)}
            if debounce["mode"] == "trailing":
                changes.update(payload=payload, payload_type=payload_type)
            await self._move(tx, run, DELAYED, event="run.debounced", description="debounced", **changes)
            return run
        fields["delay_until"] = max(fields.get("delay_until") or 0.0, tx.now + debounce["delay_s"])
        return None

    async def _record_debounce(self, tx: Tx, project: str | None, task_id: str, debounce: dict[str, Any],
                               run: Run) -> None:
        await tx.ops.set_debounce(_key_project(project), task_id, debounce["key"], run.id, tx.now)


def _key_project(project: str | None) -> str:
    # a run whose project is not known yet (nothing indexed has its task) keeps its keys apart
    return project if project is not None else ""
