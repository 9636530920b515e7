"""`up`, `down` and `status`: starting, stopping and looking at the daemon.

The daemon itself lives in `trigger_local.daemon` (`serve(settings)` in the foreground,
`python -m trigger_local.daemon ...` detached); here we only spawn, signal and ask it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..config import (
    KILL_WAITING_SIGNAL,
    DaemonSettings,
    database_url_problem,
    ignored_variables,
)
from ..daemon_lock import holder as lock_holder
from ..sdk.client import read_daemon_info
from ..settings_checks import check_task_env
from .common import JSON_OPTION, client, emit_json, err, fail, number_in, out
from .daemon_start import pid_is_ours, running_daemon, start_detached, stop_pid
from .status_text import status_lines

__all__ = ["EXECUTORS", "down", "running_daemon", "settings_for", "status", "up"]

EXECUTORS = ("process", "docker")
#: status fields that are one project's (the caller's, else the newest)
PER_PROJECT = ("current_version", "tasks")


def settings_for(home: Path | None = None, port: int | None = None, host: str | None = None,
                 executor: str | None = None, database: str | None = None) -> DaemonSettings:
    if executor is not None and executor not in EXECUTORS:
        fail(f"Unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}.")
    if home is not None:
        # So this process's client (and the daemon we spawn) agree on the home.
        os.environ["TRIGGER_LOCAL_HOME"] = str(home.expanduser().resolve())
    settings = DaemonSettings.from_env(home=home, port=port, host=host, executor=executor,
                                       database_url=database)
    problem = database_url_problem(settings.database_url)
    if problem:
        fail(problem)
    for line in ignored_variables(os.environ):
        err().print(f"Warning: {escape(line)}.")
    return settings


DATABASE_OPTION = typer.Option(
    None, "--database", metavar="URL",
    help="postgresql://user:pass@host:5432/db: keep runs in PostgreSQL, shared by every daemon "
         "given it (default: $TRIGGER_LOCAL_DATABASE_URL, else the home's SQLite file).")


def up(
    port: int | None = typer.Option(None, "--port", callback=number_in(0, 65535),
                                    help="Port to listen on (default: $TRIGGER_LOCAL_PORT, else "
                                         "8030)."),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: 127.0.0.1)."),
    executor: str | None = typer.Option(None, "--executor", help="process (default) or docker."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background."),
    home: Path | None = typer.Option(None, "--home",
                                     help="Daemon home (default: ~/.trigger-local)."),
    database: str | None = DATABASE_OPTION,
) -> None:
    """Start the daemon (in the foreground unless --detach)."""
    settings = settings_for(home, port, host, executor, database)
    check_task_env(os.environ)  # its task processes read these (not `down`'s or `migrate`'s)
    info = running_daemon(settings.home)
    if info:
        err().print(f"The daemon is already running at {info['url']} (pid {info.get('pid')}). "
                    "Stop it with `trigger-local down`.")
        raise typer.Exit(1)
    if detach:
        url, pid = start_detached(settings)
        err().print(f"Daemon started (pid {pid}), logs in {settings.home / 'logs' / 'daemon.log'}")
        out().print(url)
        return
    from .. import daemon  # the daemon's dependencies load only when we really serve

    daemon.serve(settings)


def down(
    home: Path | None = typer.Option(None, "--home",
                                     help="Daemon home (default: ~/.trigger-local)."),
    kill_waiting: bool = typer.Option(
        False, "--kill-waiting",
        help="Also kill the task processes of waiting runs. Without it they keep running (or are "
             "checkpointed) and the next daemon continues them where they wait; with it their runs "
             "are interrupted and start again from the top on the next start."),
) -> None:
    """Stop the running daemon (SIGTERM, then wait for it to exit).

    Runs that are executing go back to their queue; waiting runs keep their place unless
    --kill-waiting."""
    settings = settings_for(home)
    # daemon.json may be gone; the daemon's lock file still names it
    info = read_daemon_info(settings.home) or lock_holder(settings.home)
    pid = int(info.get("pid") or 0) if info else 0
    if not pid or not pid_is_ours(pid):
        err().print(f"No daemon is running (home {settings.home}).")
        return
    sig = KILL_WAITING_SIGNAL if kill_waiting else signal.SIGTERM
    if not stop_pid(pid, settings.shutdown_grace_s + 15, sig):
        fail(f"The daemon (pid {pid}) is still running after SIGTERM; stop it with "
             f"`kill -9 {pid}`.")
    err().print(f"Daemon stopped (pid {pid}).")


def status(
    project: str | None = typer.Option(None, "--project",
                                       help="Show this project (ref) and its own key."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Is the daemon running? Its address, pid, version, executor, run counts and projects."""
    if project is not None:
        _project_status(project, json_output)
        return
    answer = client().status()  # DaemonNotRunningError -> exit 1 with how to start it
    info = read_daemon_info() or {}
    document = {**info, **answer}
    if json_output:
        emit_json(document)
        return
    console = out()
    console.print(f"[green]running[/green] at {document.get('url', client().endpoint.base_url)}")
    # with projects, each has its own current version and tasks (the table); the top-level
    # pair is one project's only, and read as the daemon's it would mislead
    shown = {k: v for k, v in document.items()
             if k != "url" and not (document.get("projects") and k in PER_PROJECT)}
    for line in status_lines(shown):
        console.print(line, markup=False)
    if document.get("projects"):
        console.print(projects_table(document["projects"]))
    if document.get("daemons"):
        console.print(daemons_table(document["daemons"]))


def daemons_table(daemons: list[dict[str, Any]]) -> Table:
    """The daemons sharing a PostgreSQL database (docs/scaling.md)."""
    table = Table(box=None, pad_edge=False, header_style="bold", title="daemons",
                  title_justify="left")
    for column in ("DAEMON", "HOST", "EXECUTOR", "LAST HEARTBEAT", "URL"):
        table.add_column(column, no_wrap=True)
    for d in daemons:
        table.add_row(escape(str(d.get("id"))), escape(str(d.get("host"))),
                      escape(str(d.get("executor"))),
                      f"{float(d.get('silent_s') or 0):.1f} s ago", escape(str(d.get("url"))))
    return table


def projects_table(projects: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", title="projects",
                  title_justify="left")
    for column in ("PROJECT", "STATE", "VERSION", "TASKS", "DIRECTORY"):
        table.add_column(column, no_wrap=column in ("PROJECT", "STATE", "VERSION"))
    for p in projects:
        state = "[green]online[/green]" if p.get("online") else "[yellow]offline[/yellow] (no dev)"
        ids = p.get("taskIds")
        tasks = ", ".join(str(t) for t in ids) if isinstance(ids, list) else str(p.get("tasks", 0))
        table.add_row(escape(str(p.get("ref"))), state, str(p.get("currentVersion") or "-"),
                      escape(tasks or "-"), escape(str(p.get("projectDir") or "-")))
    return table


def _project_status(ref: str, json_output: bool) -> None:
    found = [p for p in client().list_projects().get("data") or [] if p.get("ref") == ref]
    if not found:
        refs = [str(p.get("ref")) for p in client().list_projects().get("data") or []]
        known = ", ".join(refs) or "none yet"
        fail(f"No project {ref!r} is registered (known: {known}). Run `trigger-local dev` in its "
             "directory.")
    if json_output:
        emit_json(found[0])
        return
    out().print(projects_table(found))
    err().print("Its key (TRIGGER_SECRET_KEY for code that should reach this project only):")
    typer.echo(found[0].get("key"))


def migrate(
    home: Path | None = typer.Option(None, "--home",
                                     help="Daemon home (default: ~/.trigger-local)."),
    database: str | None = DATABASE_OPTION,
) -> None:
    """Apply the database schema (a daemon also does it at start).

    Safe to run again: migrations are append-only and applied under a lock. On PostgreSQL a
    migration is refused while another daemon runs on the database (a daemon's code knows only
    its own schema): stop every daemon first (docs/scaling.md, "Upgrading")."""
    settings = settings_for(home, database=database)
    from ..database_admin import migrate_database  # the store loads only for this command
    from ..errors import StartupError

    try:
        state = migrate_database(settings)
    except StartupError as exc:
        fail(exc.message)
    if state.before == state.after:
        out().print(f"{state.database}: schema version {state.after}, nothing to apply")
    else:
        out().print(f"{state.database}: schema version {state.before} → {state.after}")
