"""The cap on one attempt's log volume (`log_limit_bytes`, TRIGGER_LOCAL_LOG_LIMIT_BYTES).

The daemon stores an attempt's log lines and spans until their size — each one's message and
attributes, in bytes — reaches the cap, and drops every later one of that attempt: the task
process is not trusted to stop itself, and a task printing 100 MB stored ~160 MB of rows.
When the attempt ends (engine/runs.py `move`), one marker line says how many lines and bytes
were dropped; the run itself goes on as it would have. A later attempt has a cap of its own.
Lines of an attempt that come after its marker (a process taken for gone still sending, a spool
replayed) are dropped too: the marker stays the attempt's last line.

What this daemon stored and dropped of an attempt is counted in memory (`LogCaps`), from the
stored rows the first time it sees the attempt (a marker among them: the attempt ended capped):
lines dropped before a restart of the daemon are not in the marker."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ..store.models import LogEntry
from ..store.run_areas import LogReader

#: the marker line's attribute: {"lines": n, "bytes": n, "limitBytes": n}
DROPPED_ATTRIBUTE = "trigger_local.logs_dropped"
#: attempts counted at once; one forgotten is counted again from its stored rows
MAX_TRACKED = 10_000
_PAGE = 1000


@dataclass(slots=True)
class Usage:
    stored: int
    dropped_lines: int = 0
    dropped_bytes: int = 0
    #: its marker was stored: the attempt ended capped
    marked: bool = False


def entry_size(entry: LogEntry) -> int:
    size = len(entry.message.encode("utf-8", "replace"))
    return size + len(json.dumps(entry.attributes)) if entry.attributes else size


class LogCaps:
    """Per attempt: the bytes stored, and the lines and bytes dropped past the cap."""

    def __init__(self) -> None:
        self._usage: OrderedDict[tuple[str, int | None], Usage] = OrderedDict()

    async def admit(self, logs: LogReader, limit: int,
                    entries: Sequence[LogEntry]) -> list[LogEntry]:
        """The entries to store; the rest are past their attempt's cap and counted dropped.
        Once an attempt drops a line it drops every later one: what is stored stays a prefix
        of what the task logged (a resent burst and a spool count lines from the first)."""
        kept: list[LogEntry] = []
        for entry in entries:
            usage = await self._usage_of(logs, entry.run_id, entry.attempt)
            size = entry_size(entry)
            if not usage.dropped_lines and usage.stored + size <= limit:
                usage.stored += size
                kept.append(entry)
            else:
                usage.dropped_lines += 1
                usage.dropped_bytes += size
        return kept

    def dropped_lines(self, run_id: str, attempt: int | None) -> int:
        """Lines of the attempt this daemon dropped: with the stored ones, the lines it got."""
        usage = self._usage.get((run_id, attempt))
        return usage.dropped_lines if usage is not None else 0

    def ended(self, run_id: str, attempt: int) -> Usage | None:
        """An attempt ended: what it dropped, if it dropped any line and has no marker yet.
        One that dropped none is forgotten; a capped one is kept, marked, so that lines of it
        that still come are dropped (`admit`)."""
        key = (run_id, attempt)
        usage = self._usage.get(key)
        if usage is None or not usage.dropped_lines:
            self._usage.pop(key, None)
            return None
        if usage.marked:
            return None
        usage.marked = True
        return usage

    async def _usage_of(self, logs: LogReader, run_id: str, attempt: int | None) -> Usage:
        key = (run_id, attempt)
        usage = self._usage.get(key)
        if usage is None:
            usage = self._usage[key] = await _stored_usage(logs, run_id, attempt)
            while len(self._usage) > MAX_TRACKED:
                self._usage.popitem(last=False)
        else:
            self._usage.move_to_end(key)
        return usage


def marker(run_id: str, attempt: int, usage: Usage, limit: int, now: float) -> LogEntry:
    """The one line that says what an attempt's cap dropped."""
    s = "" if usage.dropped_lines == 1 else "s"
    return LogEntry(
        run_id=run_id, attempt=attempt, at=now, level="warn",
        message=(f"{usage.dropped_lines:,} log line{s} ({usage.dropped_bytes:,} bytes) of this "
                 f"attempt were dropped: its logs reached the cap of {limit:,} bytes "
                 "(log_limit_bytes, TRIGGER_LOCAL_LOG_LIMIT_BYTES)"),
        attributes={DROPPED_ATTRIBUTE: {"lines": usage.dropped_lines,
                                        "bytes": usage.dropped_bytes, "limitBytes": limit}})


async def _stored_usage(logs: LogReader, run_id: str, attempt: int | None) -> Usage:
    """The attempt's stored rows counted; its marker among them: what it says was dropped."""
    usage, after = Usage(stored=0), 0
    while True:
        page = await logs.for_run(run_id, after, _PAGE)
        for entry in page:
            if entry.attempt != attempt:
                continue
            usage.stored += entry_size(entry)
            said = entry.attributes.get(DROPPED_ATTRIBUTE) if entry.attributes else None
            if entry.level == "warn" and isinstance(said, dict) \
                    and isinstance(lines := said.get("lines"), int) and lines > 0:
                # it ended capped: a later line would be after the marker
                usage.dropped_lines, usage.marked = lines, True
                size = said.get("bytes")
                usage.dropped_bytes = size if isinstance(size, int) else 0
        if len(page) < _PAGE:
            return usage
        after = int(page[-1].id or 0)
