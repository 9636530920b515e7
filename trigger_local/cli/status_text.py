"""`trigger-local status` in plain words: each line says what it counts ("runs resumed in their
process 4 (sent in 2 batches)", not "resumes messages 4 answers 2"), and no fact shows twice.
The daemon's JSON document (`--json`) is not changed: other tools read its field names.

A field named nowhere here still shows, under its own key, so fields the daemon adds later show
without a change here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..display import detail_time

#: the column the values start at
WIDTH = 38

#: what a field holds, in words, for the fields whose value shows as it is
LABELS = {
    "pid": "process id", "version": "version", "started_at": "started", "home": "home",
    "concurrency": "runs at once (at most)", "max_processes": "task processes (at most)",
    "channels": "shared processes connected", "held_runs": "runs waiting in shared processes",
    "containers": "task containers", "available": "docker engine reachable",
    "problem": "problem", "fix": "to fix it",
    "current_version": "current version", "tasks": "tasks",
    "handed_over": "runs started as others ended",
}


def status_lines(document: dict[str, Any], indent: int = 2) -> list[str]:
    """The status document as aligned `label  value` lines; nested objects (the executor)
    indented under their line; empty values left out."""
    lines: list[str] = []
    for key, value in document.items():
        if key in ("projects", "daemons", "url") or value in (None, "", [], {}):
            continue
        if key == "checkpoint" and "checkpoints" in document:
            continue  # the same yes/no as `checkpoints.available`: shown there
        if key == "states" and "processes" in document:
            continue  # shown on the processes line
        shown = _SPECIAL.get(key)
        pairs = shown(value, document) if shown else _plain(key, value, indent)
        for label, text in pairs:
            if label.startswith(" "):  # a nested block's lines, already indented
                lines.append(label)
                continue
            lines.append((f"{'':{indent}}{label:<{max(WIDTH - indent, len(label) + 1)}}"
                          + text).rstrip())
    return lines


Pairs = list[tuple[str, str]]


def _plain(key: str, value: Any, indent: int) -> Pairs:
    label = LABELS.get(key, key.replace("_", " "))
    if isinstance(value, dict) and _counts(value):
        return [(label, _count_text(value))]
    if isinstance(value, dict):
        inner = status_lines({k: v for k, v in value.items() if k != "name"}, indent + 2)
        return [(label, str(value.get("name", "")))] + [(line, "") for line in inner]
    return [(label, _value_text(key, value))]


def _counts(value: dict[str, Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())


def _count_text(counts: dict[str, Any]) -> str:
    """`12: 10 COMPLETED, 2 QUEUED`, or `none`."""
    total = sum(counts.values())
    parts = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    return f"{total}: {parts}" if parts else "none"


def _value_text(key: str, value: Any) -> str:
    if key.endswith("_at") and isinstance(value, int | float):
        return detail_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(" ".join(f"{k} {_value_text(k, w)}" for k, w in v.items())
                         if isinstance(v, dict) else _value_text(key, v) for v in value)
    return str(value)


def _runs(value: Any, _: dict[str, Any]) -> Pairs:
    return [("runs", _count_text(value) if isinstance(value, dict) else str(value))]


def _processes(value: Any, document: dict[str, Any]) -> Pairs:
    states = document.get("states")
    detail = ", ".join(f"{n} {s}" for s, n in states.items()) if isinstance(states, dict) else ""
    return [("task processes running", f"{value} ({detail})" if detail else str(value))]


def _resumes(value: Any, _: dict[str, Any]) -> Pairs:
    if not isinstance(value, dict):
        return [("runs resumed in their process", str(value))]
    answers = value.get("answers", 0)
    return [("runs resumed in their process",
             f"{value.get('messages', 0)} (sent in {answers} batch{'' if answers == 1 else 'es'})")]


def _frames(value: Any, _: dict[str, Any]) -> Pairs:
    """Frames by kind; `messages` is how many WebSocket messages carried them (a process
    sends the frames of one moment as one message), not a kind."""
    if not isinstance(value, dict):
        return [("messages from shared processes", str(value))]
    kinds = {k: v for k, v in value.items() if k != "messages"}
    text = _count_text(kinds)
    if "messages" in value and kinds:
        text += f" (in {value['messages']} message{'' if value['messages'] == 1 else 's'})"
    return [("messages from shared processes", text)]


def _sent(value: Any, _: dict[str, Any]) -> Pairs:
    """The daemon's frames to shared processes and the messages that carried them (a commit's
    completion answers leave with the poll answer that follows them: api/channel.py)."""
    if not isinstance(value, dict) or "frames" not in value:
        return [("messages to shared processes", str(value))]
    messages = value.get("messages", 0)
    return [("messages to shared processes",
             f"{value['frames']} frames (in {messages} message{'' if messages == 1 else 's'})")]


def _checkpoints(value: Any, _: dict[str, Any]) -> Pairs:
    """Whether waiting runs are checkpointed, and the checkpoints kept on disk now."""
    if not isinstance(value, dict):
        return [("checkpoints", _value_text("checkpoints", value))]
    if not value.get("available"):
        reason = value.get("reason") or "no reason given"
        return [("checkpoints", f"not available: {reason}")]
    tool = f"CRIU {value['criu_version']}" if value.get("criu_version") else "CRIU"
    where = " in Docker" if value.get("engine") == "docker" else ""
    pairs = [("checkpoints", f"available ({tool}{where})")]
    size = value.get("bytes")
    mib = f", {size / 2**20:.1f} MiB" if isinstance(size, int) else ""
    stored = f"{value.get('count', 0)}{mib}"
    pairs.append(("checkpoints on disk", f"{stored} in {value['dir']}" if value.get("dir")
                  else stored))
    if value.get("replays"):
        pairs.append(("after a failed dump", "waiting runs resume by replay, not CRIU"))
    return pairs


def _eviction(value: Any, _: dict[str, Any]) -> Pairs:
    """When a waiting run held in memory is let go (it resumes by replay later)."""
    if not isinstance(value, dict):
        return [("waiting runs leave memory", str(value))]
    after, most = value.get("after_s"), value.get("max_held")
    when = [f"after {after:g} s of waiting" if isinstance(after, int | float) and after > 0
            else "never for waiting long",
            f"or when more than {most} are held" if isinstance(most, int) and most > 0
            else "with no bound on how many are held"]
    pairs = [("waiting runs leave memory", ", ".join(when))]
    alone = value.get("exclusive_after_s")
    if isinstance(alone, int | float):
        pairs.append(("runs with their own process", f"leave memory after {alone:g} s "
                      "(their CRIU dumps failed)"))
    pairs.append(("runs let go of memory", str(value.get("evicted", 0))))
    return pairs


_SPECIAL: dict[str, Callable[[Any, dict[str, Any]], Pairs]] = {
    "runs": _runs, "processes": _processes, "resumes": _resumes, "channelFrames": _frames,
    "channelSent": _sent,
    "checkpoints": _checkpoints, "eviction": _eviction,
}
