"""`trigger-local dashboard`: the Textual dashboard, pointed at the daemon the CLI would use.

It is an HTTP client like every command, so it works against a daemon started elsewhere
(`TRIGGER_API_URL` + `TRIGGER_SECRET_KEY`, or the running daemon's home). With no daemon at
that address it exits 1 saying how to start one, instead of opening a screen that waits; without
a terminal (its input or output a pipe or file) it exits 1 saying so."""

from __future__ import annotations

import sys

import typer

from ..sdk.client import ApiClient, configure
from .common import client, fail


def dashboard(
    # not envvar=TRIGGER_API_URL: the client reads it, so that an error about the address
    # names where it came from (--url, or TRIGGER_API_URL)
    url: str | None = typer.Option(None, "--url",
                                   help="Daemon address (default: $TRIGGER_API_URL, else the "
                                        "running daemon's)."),
) -> None:
    """Open the live dashboard: runs and traces, waitpoints, queues, schedules."""
    from tui.app import Dashboard  # Textual loads only for this command

    if url:
        # the URL alone: the key still comes from TRIGGER_SECRET_KEY or the daemon home (an
        # `ApiClient(url)` would send none, and every request would answer 401)
        configure(base_url=url)
    # no daemon there (or a refused key): say so and how to start one, before the screen opens
    client().status()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Textual would draw into the pipe or file, and wait for keys that never come
        fail("The dashboard needs a terminal; its input or output is a pipe or file here. In "
             "a script, use `trigger-local status`, `trigger-local runs ls --json` or the "
             "event stream (`/api/v1/local/stream`, docs/dashboard.md).")
    app = Dashboard(ApiClient())
    app.run()
    if app.return_code:  # it lost the daemon before a first answer: the app printed why
        raise typer.Exit(app.return_code)
