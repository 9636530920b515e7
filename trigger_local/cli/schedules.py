"""`trigger-local schedules ls|show|create|update|delete|activate|deactivate`."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..display import table_time
from ..limits import MAX_PAGE
from ..sdk.schedules import ScheduleCalls
from .common import JSON_OPTION, client, emit_json, err, number_in, out

app = typer.Typer(help="Cron schedules: list, create, update, delete, activate, deactivate.",
                  no_args_is_help=True)

TZ_OPTION = typer.Option(None, "--timezone", "--tz",
                         help="IANA timezone, e.g. Europe/Paris (default UTC).")
EXTERNAL_OPTION = typer.Option(None, "--external-id",
                               help="Your id for it (e.g. a user id); in the payload.")
MISSED_OPTION = typer.Option(None, "--missed",
                             help="Ticks missed while the daemon was down: latest|all|skip.")


def schedules_table(items: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "PROJECT", "TASK", "TYPE", "CRON", "TIMEZONE", "NEXT RUN", "ACTIVE"):
        table.add_column(column, no_wrap=True)
    for s in items:
        table.add_row(escape(s["id"]), escape(str(s.get("project") or "-")), escape(s["task"]),
                      s["type"].lower(), escape(s["generator"]["expression"]),
                      escape(s["timezone"]),
                      table_time(s.get("nextRun")), "yes" if s["active"] else "[yellow]no[/yellow]")
    return table


def _show(schedule: dict[str, Any], json_output: bool) -> None:
    if json_output:
        emit_json(schedule)
        return
    out().print(schedules_table([schedule]))
    out().print(f"[dim]{schedule['generator']['description']}[/dim]")


@app.command("ls")
def list_schedules(page: int = typer.Option(1, "--page", callback=number_in(1, MAX_PAGE)),
                   per_page: int = typer.Option(100, "--per-page", min=1, max=100),
                   json_output: bool = JSON_OPTION) -> None:
    """List schedules with their next run."""
    answer = client().send(ScheduleCalls.list(page, per_page))
    if json_output:
        emit_json(answer)
        return
    items = answer.get("data") or []
    if not items:
        err().print("No schedules: declare one with @schedules.task(cron=...) or `trigger-local "
                    "schedules create`.")
        return
    out().print(schedules_table(items))


@app.command("show")
def show(schedule_id: str, json_output: bool = JSON_OPTION) -> None:
    """Show one schedule."""
    _show(client().send(ScheduleCalls.retrieve(schedule_id)), json_output)


@app.command("create")
def create(task: str = typer.Option(..., "--task", help="A schedules.task id."),
           cron: str = typer.Option(..., "--cron", help="e.g. '0 3 * * *'"),
           timezone: str | None = TZ_OPTION, external_id: str | None = EXTERNAL_OPTION,
           dedup: str | None = typer.Option(None, "--dedup-key",
                                            help="Same key updates that schedule."),
           missed: str | None = MISSED_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Create an imperative schedule (or update the one with the same --dedup-key)."""
    _show(client().send(ScheduleCalls.create(task, cron, timezone, external_id, dedup, missed)),
          json_output)


@app.command("update")
def update(schedule_id: str, task: str = typer.Option(..., "--task"),
           cron: str = typer.Option(..., "--cron"),
           timezone: str | None = TZ_OPTION, external_id: str | None = EXTERNAL_OPTION,
           missed: str | None = MISSED_OPTION, json_output: bool = JSON_OPTION) -> None:
    """Replace an imperative schedule's task, cron and options."""
    _show(client().send(ScheduleCalls.update(schedule_id, task, cron, timezone, external_id,
                                             missed)), json_output)


@app.command("delete")
def delete(schedule_id: str, json_output: bool = JSON_OPTION) -> None:
    """Delete an imperative schedule."""
    answer = client().send(ScheduleCalls.delete(schedule_id))
    if json_output:
        emit_json(answer)
    else:
        out().print(f"Deleted {answer['id']}")


@app.command("activate")
def activate(schedule_id: str, json_output: bool = JSON_OPTION) -> None:
    """Start firing again, from the next tick after now."""
    _show(client().send(ScheduleCalls.activate(schedule_id)), json_output)


@app.command("deactivate")
def deactivate(schedule_id: str, json_output: bool = JSON_OPTION) -> None:
    """Stop firing; the schedule keeps its settings."""
    _show(client().send(ScheduleCalls.deactivate(schedule_id)), json_output)
