"""A task process's log spool: the log lines of its current attempt, written through to a local
file as they are logged, so that lines logged just before the process dies (a SIGKILL, an
out-of-memory kill, a segfault) are not lost with the burst that had not been sent yet.

The runtime still sends log lines to the daemon in bursts (sdk/context.py); the spool is only
read when the process exits during an attempt: the daemon stores the lines of that attempt it
had not received (the spool's lines past the count it holds; bursts arrive in order, so those
are the last ones) and then records the attempt's end. A write is one `write(2)` of one line to
a file opened with O_APPEND: it is in the kernel's page cache when `logger.info` returns, which
a killed process cannot take back; no fsync, since the daemon reads it on the same machine.

Format: the first line names the attempt (`{"run": ID, "attempt": N}`), each further line is one
log entry as the runtime sends it (`at`, `level`, `message`, `attributes`, `kind`, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: the spool file of a task process (set by the process executor; absent: no spool)
SPOOL_ENV = "TRIGGER_LOCAL_LOG_SPOOL"
#: built once: `json.dumps` with options builds an encoder per call, a cost on every log line
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
#: of a line's attributes JSON cannot hold, the text kept (`encodable`)
UNENCODABLE_CHARS = 16 * 1024


class SpoolWriter:
    """The runtime's side: one file, rewritten from the start at each attempt."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    @classmethod
    def from_env(cls) -> SpoolWriter | None:
        path = os.environ.get(SPOOL_ENV)
        if not path:
            return None
        try:
            return cls(path)
        except OSError:
            return None  # no spool: the lines still go in bursts, as without one

    def begin(self, run_id: str, attempt: int) -> None:
        os.ftruncate(self._fd, 0)
        self._write({"run": run_id, "attempt": attempt})

    def clear(self) -> None:
        """The daemon holds every line of the attempt: the file need not keep them (a warm
        process keeps its spool open for its next attempt)."""
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass

    def write(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append `entry`; what was written: `encodable(entry)`, which the bursts send too (a
        line for every line they number)."""
        try:
            self._write(entry)
        except (TypeError, ValueError):
            entry = encodable(entry)
            self._write(entry)
        return entry

    def _write(self, value: dict[str, Any]) -> None:
        line = _ENCODER.encode(value) + "\n"
        try:
            os.write(self._fd, line.encode("utf-8", "replace"))
        except OSError:
            pass  # a full disk: the burst still carries the line, unless the process dies too


def encodable(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` as JSON can hold it: attributes it cannot (a dict keyed by tuples, a structure
    holding itself) are said as text, so the line is stored and costs no other."""
    try:
        _ENCODER.encode(entry)
        return entry
    except (TypeError, ValueError):
        pass
    try:
        said = repr(entry.get("attributes"))[:UNENCODABLE_CHARS]
    except Exception:  # noqa: BLE001 - a repr that fails still must not cost the line
        said = "(attributes JSON cannot hold)"
    return {**entry, "attributes": {"trigger.unencodable": said}}


def unsent(path: Path, run_id: str, attempt: int, received: int) -> list[dict[str, Any]]:
    """The entries the spool at `path` holds for `run_id`'s `attempt` past the first
    `received` ones (those the daemon has); [] when the spool is missing or of another
    attempt. A last line cut short by the process's death is left out. Lines end at "\n" only:
    a message's U+2028, U+2029 or NEL, which JSON leaves as they are, is inside its line (read
    as two broken halves, the line was left out and every later one shifted, engine/reports.py
    skipping lines of a burst by their number)."""
    try:
        lines = path.read_bytes().decode("utf-8", "replace").split("\n")
    except OSError:
        return []
    entries: list[dict[str, Any]] = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(value)
    if not entries or entries[0].get("run") != run_id or entries[0].get("attempt") != attempt:
        return []
    return entries[1 + received:]
