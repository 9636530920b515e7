"""The log lines a task process wrote to its spool (log_spool.py) but had not sent when it died:
stored before its attempt's end is recorded, so `runs logs` shows the lines logged just before
a crash."""

from __future__ import annotations

from pathlib import Path

import structlog

from ..engine import Engine
from ..log_spool import SPOOL_ENV, unsent
from ..store.models import LogEntry

log = structlog.get_logger("executor")

__all__ = ["SPOOL_ENV", "spool_path", "store_unsent_logs"]

PAGE = 1000


def spool_path(log_path: Path) -> Path:
    """A task process's spool, next to its output log."""
    return log_path.with_suffix(".spool")


async def _received(engine: Engine, run_id: str, attempt: int) -> int:
    """How many log entries of the attempt the daemon holds."""
    count, after = 0, 0
    while True:
        page = await engine.queries.logs.for_run(run_id, after, PAGE)
        count += sum(1 for entry in page if entry.attempt == attempt)
        if len(page) < PAGE:
            return count
        after = int(page[-1].id or 0)


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default


def _entry(run_id: str, attempt: int, raw: dict[str, object], now: float) -> LogEntry:
    attributes = raw.get("attributes")
    ended = raw.get("endedAt")
    return LogEntry(run_id=run_id, attempt=attempt, at=_float(raw.get("at"), now),
                    level=str(raw.get("level") or "info"), message=str(raw.get("message", "")),
                    attributes=attributes if isinstance(attributes, dict) else {},
                    kind="span" if raw.get("kind") == "span" else "log",
                    span_id=str(raw["spanId"]) if raw.get("spanId") else None,
                    parent_span_id=str(raw["parentSpanId"]) if raw.get("parentSpanId") else None,
                    ended_at=_float(ended, now) if ended is not None else None)


async def store_unsent_logs(engine: Engine, log_path: Path, run_id: str, attempt: int) -> None:
    """The process of `attempt` has exited: store what its spool holds that the daemon has not,
    and remove the spool."""
    path = spool_path(log_path)
    try:
        missing = unsent(path, run_id, attempt, await _received(engine, run_id, attempt))
        if missing:
            now = engine.clock.now()
            await engine.append_logs([_entry(run_id, attempt, raw, now) for raw in missing])
            log.info("stored log lines the task process had not sent", run=run_id,
                     attempt=attempt, lines=len(missing))
    finally:
        path.unlink(missing_ok=True)
