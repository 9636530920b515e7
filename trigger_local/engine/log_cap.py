"""The cap on one attempt's log volume (`log_limit_bytes`, TRIGGER_LOCAL_LOG_LIMIT_BYTES).

The daemon stores an attempt's log lines and spans until their size — each one's message and
attributes, in bytes — reaches the cap, and drops every later one of that attempt: the task
process is not trusted to stop itself, and a task printing 100 MB stored ~160 MB of rows.
When the attempt ends (engine/runs.py `move`), one marker line says how many lines and bytes
were dropped; the run itself goes on as it would have. A later attempt has a cap of its own.
Lines of an attempt that come after its marker (a process taken for gone still sending, a spool
replayed) are dropped too: the marker stays the attempt's last line.

What was stored and dropped of an attempt (`LogUsage`) is counted in the store (`log_usage`)
by the transaction that stores the lines, so a daemon started since (which adopts the attempt's
process) goes on from the same count; memory (`LogCaps`) keeps it too, so a burst reads nothing
(one sent again, or a spool, reads the store's: a commit whose end the daemon missed is in it).
An attempt counted by no daemon (one from a version before the count was kept) is counted from
its stored rows. A unit of work changes a copy (`Pending`), applied when it commits: a burst
whose transaction was refused and run again is counted once, and an end run again still stores
its marker. The marker's attribute is the daemon's: a task's line that carries it loses it."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from ..store.models import LogEntry, LogUsage
from ..store.run_areas import LogReader, LogStore

#: the marker line's attribute: {"lines": n, "bytes": n, "limitBytes": n}
DROPPED_ATTRIBUTE = "trigger_local.logs_dropped"
#: attempts counted at once; one forgotten is counted again from its stored rows
MAX_TRACKED = 10_000
_PAGE = 1000


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
        self.usage: dict[Key, tuple[LogUsage | None, LogUsage | None]] = {}
        self._undo: list[tuple[Key, object]] = []

    def current(self, key: Key) -> LogUsage | None | object:
        entry = self.usage.get(key)
        return _ABSENT if entry is None else entry[1]

    def put(self, key: Key, base: LogUsage | None, usage: LogUsage | None) -> None:
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
    """Per attempt: what was stored and dropped of its logs (as committed; a unit of work
    changes its `Pending` copy)."""

    def __init__(self) -> None:
        self._usage: OrderedDict[Key, LogUsage] = OrderedDict()

    async def admit(self, pending: Pending, logs: LogStore, limit: int,
                    entries: Sequence[LogEntry]) -> list[LogEntry]:
        """The entries to store; the rest are past their attempt's cap and counted dropped.
        Once an attempt drops a line it drops every later one: what is stored stays a prefix
        of what the task logged (a resent burst and a spool count lines from the first). The
        count goes to the store in the same transaction as the lines."""
        kept: list[LogEntry] = []
        mine: dict[Key, tuple[LogUsage, LogUsage]] = {}  # before the burst, and now (in place)
        for entry in entries:
            key = (entry.run_id, entry.attempt)
            counts = mine.get(key)
            if counts is None:
                base = await self.current(pending, logs, key)
                counts = mine[key] = (base, replace(base))
                pending.put(key, self._usage.get(key), counts[1])
            usage = counts[1]
            if DROPPED_ATTRIBUTE in entry.attributes:  # a task cannot fake the marker
                entry = replace(entry, attributes={k: v for k, v in entry.attributes.items()
                                                   if k != DROPPED_ATTRIBUTE})
            size = entry_size(entry)
            if not usage.dropped_lines and usage.stored_bytes + size <= limit:
                usage.stored_lines += 1
                usage.stored_bytes += size
                kept.append(entry)
            else:
                usage.dropped_lines += 1
                usage.dropped_bytes += size
        for (run_id, attempt), (base, usage) in mine.items():
            if attempt is not None:  # (the API takes lines of an attempt only)
                await logs.add_usage(run_id, attempt, usage, _change(base, usage))
        return kept

    def began(self, pending: Pending, run_id: str, attempt: int) -> None:
        """An attempt started: it has no line stored (its first burst need not page through
        the run's earlier attempts' lines, in the write transaction, to find that out)."""
        pending.put((run_id, attempt), self._usage.get((run_id, attempt)), LogUsage())

    async def ended(self, pending: Pending, logs: LogStore, run_id: str,
                    attempt: int, *, read: bool = True) -> LogUsage | None:
        """An attempt ended: what it dropped, if it dropped any line and has no marker yet
        (then counted marked in the store: the caller stores the marker). One that dropped
        none is forgotten; a capped one is kept, marked, so that lines of it that still come
        are dropped (`admit`). One this daemon has not counted is read from the store if
        `read` (the attempt may be live; it reads no stored rows: a count that is not there
        says nothing was dropped)."""
        key = (run_id, attempt)
        usage = pending.current(key)
        if usage is _ABSENT:
            usage = self._usage.get(key) or (await logs.usage(run_id, attempt) if read else None)
        if not isinstance(usage, LogUsage) or not usage.dropped_lines:
            pending.put(key, self._usage.get(key), None)
            return None
        if usage.marked:
            return None
        marked = replace(usage, marked=True)
        pending.put(key, self._usage.get(key), marked)
        await logs.add_usage(run_id, attempt, marked, LogUsage(marked=True))
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
                change = _change(base, usage)
                now.stored_lines += change.stored_lines
                now.stored_bytes += change.stored_bytes
                now.dropped_lines += change.dropped_lines
                now.dropped_bytes += change.dropped_bytes
                now.marked = now.marked or usage.marked
                self._usage.move_to_end(key)
        while len(self._usage) > MAX_TRACKED:
            self._usage.popitem(last=False)

    async def current(self, pending: Pending, logs: LogReader, key: Key) -> LogUsage:
        """The attempt's count: this unit's, this daemon's, the store's, else its stored rows
        counted (first met, or forgotten in this unit)."""
        usage = pending.current(key)
        if isinstance(usage, LogUsage):
            return usage
        if usage is _ABSENT and (usage := self._usage.get(key)) is not None:
            return usage
        run_id, attempt = key
        stored = await logs.usage(run_id, attempt) if attempt is not None else None
        return stored or await _stored_usage(logs, run_id, attempt)


    async def counted(self, pending: Pending, logs: LogReader, key: Key) -> LogUsage:
        """The attempt's count as the store has it, which this unit then goes on from: a
        commit whose end this daemon did not see (a request canceled during its COMMIT, a
        connection lost then) is counted there and not in memory; else `current`."""
        run_id, attempt = key
        stored = await logs.usage(run_id, attempt) if attempt is not None else None
        if stored is None:
            return await self.current(pending, logs, key)
        pending.put(key, self._usage.get(key), stored)
        return stored


def _change(base: LogUsage, usage: LogUsage) -> LogUsage:
    return LogUsage(usage.stored_lines - base.stored_lines,
                    usage.stored_bytes - base.stored_bytes,
                    usage.dropped_lines - base.dropped_lines,
                    usage.dropped_bytes - base.dropped_bytes, usage.marked and not base.marked)


def marker(run_id: str, attempt: int, usage: LogUsage, limit: int, now: float) -> LogEntry:
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
    """The log lines of the run's `attempt` the daemon got, stored and dropped past the cap (a
    repeated burst asks, engine/reports.py, and the executor before it replays a spool,
    executors/assignments.py): counted in the store, so also those an earlier daemon got."""
    usage = await caps.counted(pending or Pending(), logs, (run_id, attempt))
    return usage.stored_lines + usage.dropped_lines


async def _attempt_entries(logs: LogReader, run_id: str,
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


async def _stored_usage(logs: LogReader, run_id: str, attempt: int | None) -> LogUsage:
    """The attempt's stored rows counted; its marker among them: what it says was dropped."""
    usage = LogUsage()
    async for entry in _attempt_entries(logs, run_id, attempt):
        said = entry.attributes.get(DROPPED_ATTRIBUTE) if entry.attributes else None
        if entry.level == "warn" and isinstance(said, dict) \
                and isinstance(lines := said.get("lines"), int) and lines > 0:
            # it ended capped: a later line would be after the marker
            usage.dropped_lines, usage.marked = lines, True
            size = said.get("bytes")
            usage.dropped_bytes = size if isinstance(size, int) else 0
        else:
            usage.stored_lines += 1
            usage.stored_bytes += entry_size(entry)
    return usage
