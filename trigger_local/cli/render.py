"""Drawing API objects for a terminal: run tables, one run in detail, log lines.

Everything reads Trigger.dev's JSON shapes defensively (`.get` everywhere): a field the
daemon leaves out shows as "-" instead of a crash."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..display import (
    MISSING,
    attributes_text,
    clock_time,
    detail_time,
    duration_text,
    level_style,
    status_text,
    table_time,
    visible,
)

Json = dict[str, Any]


def runs_table(runs: list[Json]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True, min_width=25)
    table.add_column("PROJECT", no_wrap=True)
    table.add_column("TASK", no_wrap=True)
    table.add_column("STATUS", no_wrap=True, min_width=9)
    for column in ("CREATED", "DURATION", "TAGS"):
        table.add_column(column, no_wrap=column != "TAGS")
    for run in runs:
        # every cell a user wrote is escaped: a tag "[/]" is text, not Rich markup (it made
        # `runs ls` fail with a MarkupError for everyone)
        table.add_row(escape(str(run.get("id"))), escape(str(run.get("project") or "-")),
                      escape(str(run.get("taskIdentifier", "-"))),
                      status_text(run.get("status")), table_time(run.get("createdAt")),
                      duration_text(run.get("durationMs")),
                      escape(", ".join(run.get("tags") or [])))
    return table


def pretty(value: Any) -> str:
    """A JSON value (a payload, an output) to show: a string as it is, but for its control
    characters (`visible`), anything else as indented JSON."""
    return visible(value) if isinstance(value, str) else json.dumps(value, indent=2, default=str)


def first_and_more(ids: list[str] | None) -> str:
    """A list of ids in one cell: the first, and how many more ("" for none)."""
    if not ids:
        return ""
    return ids[0] + (f" +{len(ids) - 1}" if len(ids) > 1 else "")


_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def local_times(text: Any) -> Any:
    """A sentence from the daemon with its ISO UTC instants shown in local time, like every
    other time the CLI prints."""
    if not isinstance(text, str):
        return text
    return _ISO_INSTANT.sub(lambda m: detail_time(m.group(0)), text)


def _schedule(schedule: Json | None) -> str | None:
    if not schedule:
        return None
    generator = schedule.get("generator") or {}
    return f"{schedule['id']} ({generator.get('expression')}: {generator.get('description')})"


def _field_rows(run: Json) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, Any]] = [
        ("Task", run.get("taskIdentifier")), ("Status", status_text(run.get("status"))),
        ("Waiting", local_times(run.get("statusReason"))), ("Project", run.get("project")),
        ("Version", run.get("version")), ("Machine", run.get("machine")),
        ("Tags", ", ".join(run.get("tags") or []) or None),
        ("Idempotency key", run.get("idempotencyKey")), ("Batch", run.get("batchId")),
        ("Schedule", _schedule(run.get("schedule"))),
        ("Created", detail_time(run.get("createdAt"))),
        ("Delayed until", _opt_time(run.get("delayedUntil"))),
        ("Started", _opt_time(run.get("startedAt"))),
        ("Finished", _opt_time(run.get("finishedAt"))),
        ("Duration", duration_text(run.get("durationMs"))),
        ("Attempts", run.get("attemptCount")), ("Retry", retry_text(run.get("retryPolicy"))),
        ("TTL", run.get("ttl")),
    ]
    for label, value in rows:
        if value not in (None, "", MISSING):
            # not markup: "[retry]"
            table.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    return table


_POLICY_SOURCES = {"task": "the task's retry", "project": "trigger.toml [retry]",
                   "default": "the default", "trigger": "the trigger"}


def retry_text(policy: Any) -> str | None:
    """`retryPolicy` of a run as one line: `3 attempts, backoff 1s ×2 up to 60s, randomized
    (the default)`."""
    if not isinstance(policy, dict):
        return None
    attempts = policy.get("maxAttempts")
    text = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if attempts != 1:
        low = (policy.get("minTimeoutInMs") or 0) / 1000
        high = (policy.get("maxTimeoutInMs") or 0) / 1000
        text += f", backoff {low:g}s ×{policy.get('factor'):g} up to {high:g}s"
        text += ", randomized" if policy.get("randomize") else ""
    source = _POLICY_SOURCES.get(str(policy.get("source")), str(policy.get("source")))
    if policy.get("maxAttemptsSource") == "trigger":
        source += "; attempts from the trigger"
    oom = policy.get("outOfMemory")
    if isinstance(oom, dict):
        text += f", out of memory → {oom.get('machine')}"
    return f"{text} ({source})"


def _opt_time(value: Any) -> str | None:
    return detail_time(value) if value else None


def _error_block(error: Json) -> Text:
    text = Text()
    text.append(visible(f"{error.get('name') or 'Error'}: {error.get('message', '')}") + "\n",
                style="red")
    if error.get("stackTrace") or error.get("stack"):
        text.append(visible(str(error.get("stackTrace") or error.get("stack")).rstrip()) + "\n",
                    style="dim")
    return text


def _attempts(run: Json) -> list[Any]:
    parts: list[Any] = []
    for attempt in run.get("attempts") or []:
        head = Text(f"Attempt {attempt.get('number', '?')}  ", style="bold")
        head.append_text(status_text(attempt.get("status")))
        head.append(f"  {detail_time(attempt.get('startedAt') or attempt.get('createdAt'))}")
        parts.append(head)
        if isinstance(attempt.get("error"), dict):
            parts.append(_error_block(attempt["error"]))
    return parts


def print_run(console: Console, run: Json) -> None:
    """A run in detail: fields, attempts with their errors, payload, output, metadata."""
    console.print(Text(str(run.get("id")), style="bold"))
    console.print(_field_rows(run))
    attempts = _attempts(run)
    if attempts:
        console.print(Panel(Group(*attempts), title="Attempts", title_align="left", expand=False))
    elif isinstance(run.get("error"), dict):  # the last attempt's error already shows it
        console.print(Panel(_error_block(run["error"]), title="Error", title_align="left",
                            expand=False))
    for key, title in (("payload", "Payload"), ("output", "Output"), ("metadata", "Metadata")):
        if run.get(key) not in (None, {}):
            body = Syntax(pretty(run[key]), "json", theme="ansi_dark", word_wrap=True)
            console.print(Panel(body, title=title, title_align="left", expand=False))


def _span_took(duration_ms: Any) -> str:
    """A span's duration: "…" while it is open; the API rounds down to whole ms, so 0 is "<1ms"."""
    if not isinstance(duration_ms, int | float):
        return "…"
    return "<1ms" if duration_ms < 1 else duration_text(duration_ms)


def log_line(entry: Json, run_id: str | None = None) -> Text:
    """One log entry as `HH:MM:SS LEVEL [run] message key=value`."""
    level = str(entry.get("level") or "INFO").upper()
    line = Text(clock_time(entry.get("at")) + " ", style="dim")
    line.append(f"{level:<5} ", style=level_style(level))
    if run_id:
        line.append(f"{run_id} ", style="dim")
    if entry.get("kind") == "span":
        took = _span_took(entry.get("durationMs"))
        line.append(visible(f"span {entry.get('message', '')} ({took})"), style="italic")
    else:
        line.append(visible(str(entry.get("message", ""))))
    line.append(attributes_text(entry.get("attributes")), style="dim")
    return line
