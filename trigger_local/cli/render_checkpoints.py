"""`runs show`'s Checkpoints panel: each CRIU checkpoint of the run (path, size, time taken)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ..sdk.routes import Call
from .common import client


def print_checkpoints(console: Console, run_id: str) -> None:
    try:
        path = f"/api/v1/runs/{quote(run_id, safe='')}/trace"
        trace: dict[str, Any] = client().send(Call("GET", path))
    except Exception:  # an older daemon without traces: the panel is optional
        return
    print_resumes(console, trace.get("resumes") or [])
    rows = trace.get("checkpoints") or []
    if not rows:
        return
    table = Table(box=None, show_header=True, header_style="bold")
    for name in ("Checkpoint", "Status", "Size", "Dump", "Restore", "Path"):
        table.add_column(name)
    for ck in rows:
        size = f"{(ck.get('size_bytes') or 0) / 2**20:.1f} MiB"
        dump = f"{ck['dump_ms']:.0f} ms" if ck.get("dump_ms") is not None else "-"
        restore = f"{ck['restore_ms']:.0f} ms" if ck.get("restore_ms") is not None else "-"
        table.add_row(escape(str(ck.get("id"))), escape(str(ck.get("status"))), size, dump,
                      restore, escape(str(ck.get("path"))))
    console.print(Panel(table, title="Checkpoints", title_align="left", expand=False))


def resume_text(item: dict[str, Any]) -> str:
    """One resume of a run in words (`resumes` of the trace: docs/durability.md)."""
    how = item.get("how")
    if how == "replayed":
        n = item.get("records") or 0
        return (f"attempt {item.get('attempt')}: replayed {n} record{'s' if n != 1 else ''} "
                "(completed waits and steps from record)")
    if how == "restored":
        ms = item.get("restoreMs")
        took = f" in {ms:.0f} ms" if isinstance(ms, int | float) else ""
        return f"restored from checkpoint {item.get('checkpointId')}{took}"
    if how == "adopted":
        return f"process {item.get('workerId')} adopted by a restarted daemon"
    return str(how)


def print_resumes(console: Console, items: list[dict[str, Any]]) -> None:
    """How the run resumed each time it lost its place in memory."""
    if not items:
        return
    lines = [f"{item.get('at') or ''}  {resume_text(item)}" for item in items]
    console.print(Panel("\n".join(lines), title="Resumed", title_align="left", expand=False))
