"""`trigger-local runs ls|show|logs|stream|cancel|replay|reschedule`."""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from ..display import detail_time, status_text
from ..sdk.client import SyncApiClient
from ..sdk.management import is_final
from ..statuses import RunStatus
from .common import JSON_OPTION, client, emit_json, err, fail, given, out
from .completion import complete_run_id, complete_task
from .follow import LogTail, follow_logs
from .render import print_run, runs_table
from .render_checkpoints import print_checkpoints
from .streams_cmd import stream

RUN_ID = typer.Argument(..., help="The run id (run_…).", autocompletion=complete_run_id)

app = typer.Typer(help="List, inspect, cancel, replay and reschedule runs.", no_args_is_help=True)

STATUSES = tuple(RunStatus)


def _statuses(values: list[str]) -> list[str]:
    wanted = [s.strip().upper() for v in values for s in v.split(",") if s.strip()]
    if values and not wanted:  # `--status ,` listed every run
        raise typer.BadParameter("must not be empty (leave it out for any status)",
                                 param_hint="--status")
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise typer.BadParameter(f"unknown status {', '.join(unknown)}; use one of "
                                 f"{', '.join(STATUSES)}",
                                 param_hint="--status")
    return wanted


@app.command("ls")
def list_runs(
    status: list[str] = typer.Option([], "--status", "-s", callback=given("any status"),
                                     help="Only these statuses (repeatable or a,b)."),
    task: list[str] = typer.Option([], "--task", help="Only runs of these tasks (repeatable).",
                                   autocompletion=complete_task, callback=given("any task")),
    tag: list[str] = typer.Option([], "--tag", help="Only runs with this tag (repeatable).",
                                  callback=given("any tag")),
    project: list[str] = typer.Option([], "--project", callback=given("every project"),
                                      help="Only runs of this project ref (repeatable; "
                                      "default: every project's)."),
    limit: int = typer.Option(25, "--limit", "-n", min=1, max=100,
                              help="How many runs (newest first)."),
    after: str | None = typer.Option(None, "--after", help="Cursor: the page after this one."),
    json_output: bool = JSON_OPTION,
) -> None:
    """List runs, newest first."""
    api = client()
    page = api.list_runs(status=_statuses(status) or None, task=task or None, tag=tag or None,
                         limit=limit, after=after, project=project or None)
    runs = page.get("data") or []
    if project:
        _check_projects(api, project, found_runs=bool(runs))
    if json_output:
        emit_json(page)
        return
    if not runs:
        err().print("No runs match. Trigger one with `trigger-local trigger TASK`.")
        return
    out().print(runs_table(runs))
    next_cursor = (page.get("pagination") or {}).get("next")
    if next_cursor:
        err().print(f"More: trigger-local runs ls --after {next_cursor}")


def _check_projects(api: SyncApiClient, refs: list[str], found_runs: bool) -> None:
    """`--project` refs the daemon does not serve (a typo) are an error naming the known ones,
    as the API's 404 does, rather than "No runs match"; with runs of other refs listed, a
    warning."""
    known = [str(p.get("ref")) for p in api.list_projects().get("data") or []]
    unknown = [ref for ref in refs if ref not in known]
    if not unknown:
        return
    message = (f"No project {', '.join(repr(r) for r in unknown)} is registered (known: "
               f"{', '.join(known) or 'none yet'}). Run `trigger-local dev` in its directory, "
               "or fix --project.")
    if not found_runs:
        fail(message)
    err().print(Text(f"Warning: {message}", style="yellow"))


@app.command("show")
def show(run_id: str = RUN_ID,
         json_output: bool = JSON_OPTION) -> None:
    """A run in detail: status, attempts with errors and tracebacks, payload, output, metadata."""
    run = client().retrieve_run(run_id)
    if json_output:
        emit_json(run)
        return
    print_run(out(), run)
    print_checkpoints(out(), run_id)


@app.command("logs")
def logs(run_id: str = RUN_ID,
         follow: bool = typer.Option(False, "--follow", "-f",
                                     help="Keep printing until the run ends.")) -> None:
    """Print a run's log lines (and spans)."""
    api = client()
    if not follow:
        if LogTail(api, run_id).pump() == 0:
            err().print(f"No log lines for {run_id}.")
        return
    run = follow_logs(api, run_id)
    line = status_text(run.get("status"))
    line.stylize("bold")
    err().print(Text(f"{run_id} ended: ") + line)


app.command("stream")(stream)


@app.command("cancel")
def cancel(run_id: str = RUN_ID) -> None:
    """Cancel a run that has not finished (finished runs are left as they are)."""
    api = client()
    before = api.retrieve_run(run_id)  # a final run (canceled too) stays as it is: say so
    if is_final(before):
        err().print(f"{run_id} had already finished ({before.get('status')}); nothing changed.")
        return
    api.cancel_run(run_id)
    run = api.retrieve_run(run_id)
    if run.get("status") != "CANCELED":
        err().print(f"{run_id} finished ({run.get('status')}) before it could be canceled; "
                    "nothing changed.")
    else:
        err().print(f"Canceled {run_id}.")


@app.command("replay")
def replay(run_id: str = RUN_ID,
           json_output: bool = JSON_OPTION) -> None:
    """Run the same task again with the same payload and options."""
    answer = client().replay_run(run_id)
    if json_output:
        emit_json(answer)
        return
    new_id = str(answer.get("id"))
    said = f"Replayed {run_id} as {new_id}"
    if sys.stdout.isatty():  # a person reads it: one whole line
        out().print(said, markup=False)
        return
    err().print(said, markup=False)  # a pipe gets the new id alone: `new=$(... runs replay RUN)`
    typer.echo(new_id)


@app.command("reschedule")
def reschedule(run_id: str = typer.Argument(..., help="A DELAYED run's id.",
                                            autocompletion=complete_run_id),
               delay: str = typer.Option(..., "--delay",
                                         help="New delay from now (10m, 2h) or an ISO date."),
               json_output: bool = JSON_OPTION) -> None:
    """Move a delayed run's start time."""
    run = client().reschedule_run(run_id, delay)
    if json_output:
        emit_json(run)
        return
    err().print(f"{run_id} now starts at {detail_time(run.get('delayedUntil'))}.")
