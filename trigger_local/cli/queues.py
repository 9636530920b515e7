"""`trigger-local queues ls|show|pause|resume`."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..display import limit_text
from ..limits import MAX_PAGE
from .common import JSON_OPTION, client, emit_json, err, number_in, out
from .completion import complete_queue

QUEUE_NAME = typer.Argument(..., help="Task id, custom queue name, or queue_… id.",
                            autocompletion=complete_queue)

app = typer.Typer(help="Queues: list, inspect, pause and resume.", no_args_is_help=True)

TYPE_OPTION = typer.Option(None, "--type", help="task, custom or id, when NAME is ambiguous.")


def _limit(queue: dict[str, Any]) -> str:
    return limit_text(queue.get("concurrencyLimit"))


def queues_table(queues: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("PROJECT", "NAME", "TYPE", "RUNNING", "QUEUED", "LIMIT", "PAUSED"):
        table.add_column(column, no_wrap=True)
    for queue in queues:
        table.add_row(escape(str(queue.get("project", "-"))), escape(str(queue.get("name"))),
                      escape(str(queue.get("type", "-"))),
                      str(queue.get("running", 0)), str(queue.get("queued", 0)), _limit(queue),
                      "[yellow]paused[/yellow]" if queue.get("paused") else "")
    return table


@app.command("ls")
def list_queues(
    page: int = typer.Option(1, "--page", callback=number_in(1, MAX_PAGE)),
    per_page: int = typer.Option(100, "--per-page", min=1, max=100),
    json_output: bool = JSON_OPTION,
) -> None:
    """List queues with their running and queued counts."""
    answer = client().list_queues(page, per_page)
    if json_output:
        emit_json(answer)
        return
    queues = answer.get("data") or []
    if not queues:
        err().print("No queues yet: a task's queue appears when its project is registered "
                    "(`trigger-local dev`).")
        return
    out().print(queues_table(queues))
    pagination = answer.get("pagination") or {}
    if pagination.get("currentPage", 1) < pagination.get("totalPages", 1):
        err().print(f"More: trigger-local queues ls --page {pagination['currentPage'] + 1}")


def _show(queue: dict[str, Any]) -> None:
    console = out()
    state = "[yellow]paused[/yellow]" if queue.get("paused") else "[green]active[/green]"
    console.print(f"[bold]{escape(str(queue.get('name')))}[/bold] "
                  f"({escape(str(queue.get('type', '-')))}, "
                  f"{escape(str(queue.get('id', '-')))}, project {queue.get('project', '-')})  "
                  f"{state}")
    console.print(f"  running {queue.get('running', 0)}  queued {queue.get('queued', 0)}  limit "
                  f"{_limit(queue)}")


@app.command("show")
def show(name: str = QUEUE_NAME,
         type: str | None = TYPE_OPTION, json_output: bool = JSON_OPTION) -> None:
    """One queue: running, queued, limit, paused."""
    queue = client().retrieve_queue(name, type)
    if json_output:
        emit_json(queue)
    else:
        _show(queue)


@app.command("pause")
def pause(name: str = QUEUE_NAME,
          type: str | None = TYPE_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Pause a queue: it keeps accepting runs but starts none."""
    queue = client().pause_queue(name, type)
    if json_output:
        emit_json(queue)
    else:
        err().print(f"Paused {escape(str(queue.get('name', name)))}; resume it with "
                    f"`trigger-local queues resume {escape(name)}`.")


@app.command("resume")
def resume(name: str = QUEUE_NAME,
           type: str | None = TYPE_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Resume a paused queue."""
    queue = client().resume_queue(name, type)
    if json_output:
        emit_json(queue)
    else:
        err().print(f"Resumed {escape(str(queue.get('name', name)))}.")
