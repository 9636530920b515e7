"""How things look in a terminal, for the CLI and the dashboard alike: the colour of each status
and log level, times (local time everywhere: one short form for tables, one full form for a
single record, the time of day for log lines), durations, and the symbols for "none" and "no
limit".

Text that came from a task (log lines, error messages, tracebacks) is shown through `visible`:
a terminal control sequence in it is printed as its escape, not obeyed.

Everything reads the API's JSON values defensively: a missing or malformed value shows as
`MISSING` instead of raising."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from .statuses import RunStatus

#: what a terminal obeys instead of printing (C0 but tab and newline, DEL, C1): ESC starts a
#: sequence that may clear the screen, retitle the window or redefine keys
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with its control characters written as escapes (`\x1b`), so that a log line or
    an error message a task wrote cannot drive the terminal it is shown in."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def attributes_text(attributes: Any) -> str:
    """A log line's attributes as ` key=value` pairs ("" for none): the keys through
    `visible`, the values as JSON (whose escapes cover control characters)."""
    if not isinstance(attributes, dict):
        return ""
    return "".join(f" {visible(str(k))}={json.dumps(v, default=str)}"
                   for k, v in attributes.items())


#: a value the daemon left out
MISSING = "-"
#: a queue's concurrency limit when it has none of its own (the daemon's global limit applies)
NO_LIMIT = "∞"

#: one colour per status: waiting to start blue, running cyan, waiting on something yellow,
#: done green, failed red (bold when the machine, not the code, failed), given up dim. Token
#: statuses share the names and the colours (a WAITING token is as yellow as a WAITING run).
STATUS_STYLES: dict[str, str] = {
    RunStatus.PENDING_VERSION: "blue", RunStatus.DELAYED: "blue", RunStatus.QUEUED: "blue",
    RunStatus.DEQUEUED: "cyan", RunStatus.EXECUTING: "cyan", RunStatus.WAITING: "yellow",
    RunStatus.COMPLETED: "green", RunStatus.FAILED: "red", RunStatus.TIMED_OUT: "red",
    RunStatus.CRASHED: "bold red", RunStatus.SYSTEM_FAILURE: "bold red",
    RunStatus.CANCELED: "dim", RunStatus.EXPIRED: "dim",
}
LEVEL_STYLES = {"ERROR": "red", "WARN": "yellow", "WARNING": "yellow", "INFO": "green",
                "DEBUG": "dim", "TRACE": "dim"}

TABLE_TODAY = "%H:%M:%S"
TABLE_OTHER_DAY = "%Y-%m-%d %H:%M"
DETAIL = "%Y-%m-%d %H:%M:%S"
CLOCK = "%H:%M:%S"


def status_text(status: Any) -> Text:
    return Text(str(status or MISSING), style=STATUS_STYLES.get(str(status), ""))


def level_style(level: str) -> str:
    return LEVEL_STYLES.get(level.upper(), "green")


def parse_when(value: Any) -> datetime | None:
    """An API date (ISO string, epoch seconds or milliseconds) as an aware datetime."""
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):  # not a date, or past the calendar's end
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _local(when: datetime) -> datetime:
    try:
        return when.astimezone()
    except (OverflowError, ValueError):  # a date at the end of the calendar: shown in UTC
        return when


def epoch_s(value: Any) -> float | None:
    """An API date as epoch seconds (for arithmetic), or None."""
    when = parse_when(value)
    return None if when is None else when.timestamp()


def table_time(value: Any, now: datetime | None = None) -> str:
    """In a table: the time of day for today, the date and minute for any other day."""
    when = parse_when(value)
    if when is None:
        return MISSING
    local, today = _local(when), (now or datetime.now(UTC)).astimezone().date()
    return local.strftime(TABLE_TODAY if local.date() == today else TABLE_OTHER_DAY)


def detail_time(value: Any) -> str:
    """For one record shown in full: date and time to the second."""
    when = parse_when(value)
    return MISSING if when is None else _local(when).strftime(DETAIL)


def clock_time(value: Any) -> str:
    """At the start of a log line: the time of day."""
    when = parse_when(value)
    return MISSING if when is None else _local(when).strftime(CLOCK)


def duration_text(ms: Any) -> str:
    """`850ms`, `12.3s`, `4m05s`, `2h03m`."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return MISSING
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def limit_text(limit: Any) -> str:
    return NO_LIMIT if limit is None else str(limit)
