"""`trigger-local`: the command line. Every command is an HTTP client of the daemon (except
`up`, which starts it): nothing here opens the database or imports the engine."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .. import __version__
from . import (
    daemon_cmds,
    deploy,
    dev,
    doctor,
    envvars_cmd,
    init_cmd,
    queues,
    runs,
    schedules,
    tokens,
    trigger_cmd,
)
from .common import CliGroup
from .dashboard_cmd import dashboard

app = typer.Typer(
    cls=CliGroup,
    name="trigger-local",
    help="Trigger.dev for Python, on one machine: durable background tasks run by a local daemon.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trigger-local {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: Path | None = typer.Option(None, "--home", envvar="TRIGGER_LOCAL_HOME",
                                     help="Daemon home (default: ~/.trigger-local)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Trigger.dev for Python, on one machine, offline."""
    if home is not None:
        # Every command (and the client's daemon lookup) reads the home from the environment.
        os.environ["TRIGGER_LOCAL_HOME"] = str(home.expanduser().resolve())


app.command()(init_cmd.init)
app.command()(daemon_cmds.up)
app.command()(daemon_cmds.down)
app.command()(daemon_cmds.status)
app.command()(daemon_cmds.migrate)
app.command()(doctor.doctor)
app.command()(dev.dev)
app.command()(deploy.deploy)
app.command()(trigger_cmd.trigger)
app.command()(dashboard)
app.add_typer(runs.app, name="runs")
app.add_typer(tokens.app, name="tokens")
app.add_typer(queues.app, name="queues")
app.add_typer(schedules.app, name="schedules")
app.add_typer(envvars_cmd.app, name="envvars")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
