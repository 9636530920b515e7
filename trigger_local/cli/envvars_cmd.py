"""`trigger-local envvars ls|delete`: a project's environment variables (the envvars API,
docs/configuration.md), also those stored under a ref no project has any more."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import NotFoundError, ProjectNotFoundError
from ..sdk.client import read_secret_key
from ..sdk.routes import Call
from .common import JSON_OPTION, client, emit_json, err, fail, key_project, out

app = typer.Typer(help="Environment variables of a project: list and delete.",
                  no_args_is_help=True)

PROJECT_OPTION = typer.Option(None, "--project",
                              help="The project's ref (default: TRIGGER_LOCAL_PROJECT, this "
                                   "directory's project, or TRIGGER_SECRET_KEY's if that is a "
                                   "project's key and the directory names none).")
ENV_OPTION = typer.Option("dev", "--env", help="dev, staging, prod or preview.")


def _ref(project: str | None) -> str:
    """--project, else the project requests mean (TRIGGER_LOCAL_PROJECT, this directory's),
    else a project key's own: with a key not the daemon's, a directory naming no project is
    the key's project (as for dev), not the one its name derives."""
    api = client()
    ref = project or api.endpoint.project
    if not ref and api.endpoint.secret_key not in (None, read_secret_key()):
        ref = key_project(api)
    if not ref:
        fail("Name the project: --project REF (or run this in the project's directory, or set "
             "TRIGGER_LOCAL_PROJECT).")
    return ref


def _base(ref: str, env: str) -> str:
    return f"/api/v1/projects/{quote(ref, safe='')}/envvars/{quote(env, safe='')}"


def _table(variables: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "VALUE"):
        table.add_column(column, no_wrap=True)
    for var in variables:
        table.add_row(escape(str(var.get("name"))), escape(str(var.get("value"))))
    return table


@app.command("ls")
def list_vars(project: str | None = PROJECT_OPTION, env: str = ENV_OPTION,
              json_output: bool = JSON_OPTION) -> None:
    """List a project's variables (secret values show as <redacted>)."""
    variables: list[dict[str, Any]] = client().send(Call("GET", _base(_ref(project), env)))
    if json_output:
        emit_json(variables)
        return
    if not variables:
        err().print("No variables.")
        return
    out().print(_table(variables))


@app.command()
def delete(name: str = typer.Argument(..., help="The variable's name."),
           project: str | None = PROJECT_OPTION, env: str = ENV_OPTION) -> None:
    """Delete one variable of a project."""
    ref = _ref(project)
    try:
        client().send(Call("DELETE", f"{_base(ref, env)}/{quote(name, safe='')}"))
    except ProjectNotFoundError:
        raise
    except NotFoundError:  # the daemon says "Environment variable not found", naming nothing
        listing = "trigger-local envvars ls" + (f" --project {ref}" if project else "") \
            + (f" --env {env}" if env != "dev" else "")
        fail(f"{ref} has no variable {name!r} in {env}. List them with `{listing}`.")
    err().print(f"Deleted {escape(name)}.")
