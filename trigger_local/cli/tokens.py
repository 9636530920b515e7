"""`trigger-local tokens ls|show|create|complete|timeout`: waitpoint tokens (human-in-the-loop)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from .. import packets
from ..display import detail_time, status_text, table_time
from ..sdk.client import SyncApiClient
from .common import JSON_OPTION, client, emit_json, err, fail, out, read_json_arg
from .completion import complete_token_id
from .render import first_and_more, pretty

TOKEN_ID = typer.Argument(..., help="The token id (waitpoint_…).", autocompletion=complete_token_id)

app = typer.Typer(help="Waitpoint tokens: list, create, complete, time out.", no_args_is_help=True)


def tokens_table(tokens: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "STATUS", "RUNS", "CREATED", "TIMEOUT", "TAGS", "KEY"):
        table.add_column(column, no_wrap=column != "TAGS")
    for token in tokens:
        table.add_row(escape(str(token.get("id"))), status_text(token.get("status")),
                      escape(first_and_more(token.get("blockedRunIds"))),
                      table_time(token.get("createdAt")), table_time(token.get("timeoutAt")),
                      escape(", ".join(token.get("tags") or [])),
                      escape(str(token.get("idempotencyKey") or "")))
    return table


@app.command("ls")
def list_tokens(
    status: list[str] = typer.Option([], "--status", "-s", help="WAITING, COMPLETED or TIMED_OUT."),
    tag: list[str] = typer.Option([], "--tag", help="Only tokens with these tags (repeatable)."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", "--key",
                                               help="Only the token with this idempotency key."),
    limit: int = typer.Option(25, "--limit", "-n", min=1, max=100),
    after: str | None = typer.Option(None, "--after", help="Cursor: the page after this one."),
    json_output: bool = JSON_OPTION,
) -> None:
    """List waitpoint tokens, newest first."""
    page = client().list_tokens(status=[s.upper() for s in status] or None, tags=tag or None,
                                limit=limit, after=after, idempotency_key=idempotency_key)
    if json_output:
        emit_json(page)
        return
    tokens = page.get("data") or []
    if not tokens:
        err().print("No tokens match.")
        return
    out().print(tokens_table(tokens))
    if (page.get("pagination") or {}).get("next"):
        err().print(f"More: --after {page['pagination']['next']}")


@app.command("show")
def show(token_id: str = TOKEN_ID,
         json_output: bool = JSON_OPTION) -> None:
    """A token: status, timeout, tags, callback URL and output."""
    token = client().retrieve_token(token_id)
    if json_output:
        emit_json(token)
        return
    console = out()
    console.print(f"[bold]{token.get('id')}[/bold]  ", status_text(token.get("status")))
    for label, key in (("Created", "createdAt"), ("Completed", "completedAt"),
                       (_timeout_label(token.get("status")), "timeoutAt")):
        if label and token.get(key):
            console.print(f"  {label:<10} {detail_time(token[key])}")
    if token.get("tags"):
        console.print(f"  {'Tags':<10} {escape(', '.join(token['tags']))}")
    if token.get("url"):
        console.print(f"  {'URL':<10} {token['url']}", markup=False)
    if token.get("output") is not None:
        try:
            value = packets.decode(token["output"], token.get("outputType") or packets.JSON)
        except ValueError:  # not JSON after all: show what is stored
            value = token["output"]
        label = "Error" if token.get("outputIsError") else "Output"
        console.print(f"  {label:<10} {pretty(value)}", markup=False)


def _timeout_label(status: object) -> str:
    """A completed token's timeout is past news: only a waiting or timed-out one names it."""
    return {"WAITING": "Times out", "TIMED_OUT": "Timed out"}.get(str(status), "")


@app.command("create")
def create(
    timeout: str | None = typer.Option(None, "--timeout",
                                       help="Time out after this (10m, 1d) or at an ISO date."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    idempotency_key_ttl: str | None = typer.Option(None, "--idempotency-key-ttl"),
    tag: list[str] = typer.Option([], "--tag", help="Tag the token (repeatable)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Create a token a task can wait for with `wait.for_token`."""
    token = client().create_token(timeout=timeout, idempotency_key=idempotency_key,
                                  idempotency_key_ttl=idempotency_key_ttl, tags=tag or None)
    if json_output:
        emit_json(token)
        return
    err().print(f"Callback URL (POST JSON to complete it, no key needed): {token.get('url')}")
    typer.echo(token.get("id"))


def _refuse_if_done(api: SyncApiClient, token_id: str, action: str,
                    token: dict[str, Any] | None = None) -> None:
    """Fail with one line when the token (`token`, as just answered, or read now) is no
    longer WAITING: the daemon answered that this call changed nothing (the API answers
    success for completing or timing out such a token, as Trigger.dev's does)."""
    token = token if token is not None else api.retrieve_token(token_id)
    status = token.get("status")
    if status == "WAITING":
        return
    when = token.get("completedAt") or token.get("timeoutAt")
    at = f" at {detail_time(when)}" if when else ""
    what = "timed out" if status == "TIMED_OUT" else f"was already {str(status).lower()}"
    fail(f"{token_id} {what}{at}; nothing was {action}. "
         f"See it with `trigger-local tokens show {token_id}`.")


@app.command("complete")
def complete(
    token_id: str = TOKEN_ID,
    data: str | None = typer.Option(None, "--data", "-d",
                                    help="JSON output: JSON, @file.json or -."),
) -> None:
    """Complete a token; the waiting run continues with DATA as the result.

    A token that timed out or was completed already (also by another client just before) is
    an error (exit 1): nothing changes."""
    value = read_json_arg(data, "--data") if data is not None else None
    api = client()
    # the daemon's answer says whether this call completed it: no read-then-write race (an
    # older daemon's has no `changed`, and cannot say: taken as done, as the dashboard does)
    if api.complete_token(token_id, value).get("changed") is False:
        _refuse_if_done(api, token_id, "completed")
    err().print(f"Completed {token_id}.")


@app.command("timeout")
def timeout(token_id: str = TOKEN_ID) -> None:
    """Time a token out now; the waiting run continues with a timeout error.

    A token that was completed or timed out already is an error (exit 1): nothing changes."""
    api = client()
    token = api.timeout_token(token_id)
    if token.get("changed") is False:
        _refuse_if_done(api, token_id, "timed out", token)
    err().print(f"Timed out {token_id}.")
