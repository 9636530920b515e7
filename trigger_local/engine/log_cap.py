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
lines dropped before a restart of the daemon are not in the marker. A unit of work changes a
copy (`Pending`), applied when it commits: a burst whose transaction was refused and run again
is counted once, and an end run again still stores its marker."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

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


Key = tuple[str, int | None]
_ABSENT = object()


class Pending:
    """One unit of work's changes to the counts (`Tx.log_counts`), applied once it commits
    (`LogCaps.apply`): a transaction the store refused or that failed, or a part of one that was
    undone (`mark`, `undo`), changes none (its lines were not stored; it is run again)."""

    def __init__(self) -> None:
        #: per attempt: its count when the unit first met it, and now (None: forget it)
        self.usage: dict[Key, tuple[Usage | None, Usage | None]] = {}
        self._undo: list[tuple[Key, object]] = []

    def current(self, key: Key) -> Usage | None | object:
        entry = self.usage.get(key)
        return _ABSENT if entry is None else entry[1]

    def put(self, key: Key, base: Usage | None, usage: Usage | None) -> None:
        was = self.usage.get(key, _ABSENT)
        self._undo.append((key, was))
        first = was[0] if isinstance(was, tuple) else replace(base) if base else None
        self.usage[key] = (first, usage)

    def mark(self) -> int:
        return len(self._undo)

    def undo(self, mark: int) -> None:
        for key, was in reversed(self._undo[mark:]):
            if isinstance(was, tuple):
                self.usage[key] = was
            else:
                self.usage.pop(key, None)
        del self._undo[mark:]


class LogCaps:
    """Per attempt: the bytes stored, and the lines and bytes dropped past the cap (as
    committed; a unit of work changes its `Pending` copy)."""

    def __init__(self) -> None:
        self._usage: OrderedDict[Key, Usage] = OrderedDict()

    async def admit(self, pending: Pending, logs: LogReader, limit: int,
                    entries: Sequence[LogEntry]) -> list[LogEntry]:
        """The entries to store; the rest are past their attempt's cap and counted dropped.
        Once an attempt drops a line it drops every later one: what is stored stays a prefix
        of what the task logged (a resent burst and a spool count lines from the first)."""
        kept: list[LogEntry] = []
        mine: dict[Key, Usage] = {}  # this burst's copies, changed in place
        for entry in entries:
            key = (entry.run_id, entry.attempt)
            usage = mine.get(key)
            if usage is None:
                base = await self._current(pending, logs, key)
                usage = mine[key] = replace(base)
                pending.put(key, self._usage.get(key), usage)
            size = entry_size(entry)
            if not usage.dropped_lines and usage.stored + size <= limit:
                usage.stored += size
                kept.append(entry)
            else:
                usage.dropped_lines += 1
                usage.dropped_bytes += size
        return kept

    def began(self, pending: Pending, run_id: str, attempt: int) -> None:
        """An attempt started: it has no line stored (its first burst need not page through
        the run's earlier attempts' lines, in the write transaction, to find that out)."""
        pending.put((run_id, attempt), self._usage.get((run_id, attempt)), Usage(stored=0))

    def dropped_lines(self, run_id: str, attempt: int | None,
                      pending: Pending | None = None) -> int:
        """Lines of the attempt this daemon dropped: with the stored ones, the lines it got."""
        key = (run_id, attempt)
        usage = pending.current(key) if pending is not None else _ABSENT
        if usage is _ABSENT:
            usage = self._usage.get(key)
        return usage.dropped_lines if isinstance(usage, Usage) else 0

    def ended(self, pending: Pending, run_id: str, attempt: int) -> Usage | None:
        """An attempt ended: what it dropped, if it dropped any line and has no marker yet.
        One that dropped none is forgotten; a capped one is kept, marked, so that lines of it
        that still come are dropped (`admit`)."""
        key = (run_id, attempt)
        usage = pending.current(key)
        if usage is _ABSENT:
            usage = self._usage.get(key)
        if not isinstance(usage, Usage) or not usage.dropped_lines:
            pending.put(key, self._usage.get(key), None)
            return None
        if usage.marked:
            return None
        marked = replace(usage, marked=True)
        pending.put(key, self._usage.get(key), marked)
        return marked

    def apply(self, pending: Pending) -> None:
        """A unit of work committed: its changes to the counts hold (added to what other units
        committed meanwhile)."""
        for key, (base, usage) in pending.usage.items():
            now = self._usage.get(key)
            if usage is None:
                self._usage.pop(key, None)
            elif now is None or base is None:
                self._usage[key] = usage
            else:
                now.stored += usage.stored - base.stored
                now.dropped_lines += usage.dropped_lines - base.dropped_lines
                now.dropped_bytes += usage.dropped_bytes - base.dropped_bytes
                now.marked = now.marked or usage.marked
                self._usage.move_to_end(key)
        while len(self._usage) > MAX_TRACKED:
            self._usage.popitem(last=False)

    async def _current(self, pending: Pending, logs: LogReader, key: Key) -> Usage:
        usage = pending.current(key)
        if isinstance(usage, Usage):
            return usage
        if usage is _ABSENT and (usage := self._usage.get(key)) is not None:
            return usage
        return await _stored_usage(logs, *key)  # first met (or forgotten in this unit)


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


async def lines_received(logs: LogReader, caps: LogCaps, run_id: str, attempt: int | None,
                         pending: Pending | None = None) -> int:
    """The log lines of the run's `attempt` the daemon got: those stored and those this daemon
    dropped past the cap (a repeated burst asks, engine/reports.py, and the executor before it
    replays a spool, executors/assignments.py)."""
    stored = 0
    async for _ in attempt_entries(logs, run_id, attempt):
        stored += 1
    return stored + caps.dropped_lines(run_id, attempt, pending)


async def attempt_entries(logs: LogReader, run_id: str,
                          attempt: int | None) -> AsyncIterator[LogEntry]:
    """The stored log rows of the run's `attempt`, oldest first (read a page at a time)."""
    after = 0
    while True:
        page = await logs.for_run(run_id, after, _PAGE)
        for entry in page:
            if entry.attempt == attempt:
                yield entry
        if len(page) < _PAGE:
            return
        after = int(page[-1].id or 0)


async def _stored_usage(logs: LogReader, run_id: str, attempt: int | None) -> Usage:
    """The attempt's stored rows counted; its marker among them: what it says was dropped."""
    usage = Usage(stored=0)
    async for entry in attempt_entries(logs, run_id, attempt):
        usage.stored += entry_size(entry)
        said = entry.attributes.get(DROPPED_ATTRIBUTE) if entry.attributes else None
        if entry.level == "warn" and isinstance(said, dict) \
                and isinstance(lines := said.get("lines"), int) and lines > 0:
            # it ended capped: a later line would be after the marker
            usage.dropped_lines, usage.marked = lines, True
            size = said.get("bytes")
            usage.dropped_bytes = size if isinstance(size, int) else 0
    return usage
