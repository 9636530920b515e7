"""`trigger-local trigger TASK`: start a run, optionally wait for its output."""

from __future__ import annotations

from typing import Any

import typer

from .. import packets
from ..durations import parse_duration
from ..errors import ValidationError
from ..limits import MAX_ATTEMPTS, MAX_PRIORITY_S
from .common import client, emit_json, err, given, number_in, read_json_arg
from .completion import complete_task
from .follow import RunWatch, event_cursor, wait_until_final
from .render import pretty
from .run_events import error_summary

#: the shell's exit code for a command stopped by Ctrl-C (128 + SIGINT)
INTERRUPTED_EXIT = 130


def build_options(*, delay: str | None, ttl: str | None, priority: float | None, tags: list[str],
                  queue: str | None, concurrency_key: str | None, idempotency_key: str | None,
                  max_attempts: int | None, max_duration: str | None,
                  machine: str | None) -> dict[str, Any]:
    """The trigger options (SDK names; the client turns them into the wire form)."""
    options: dict[str, Any] = {
        "delay": delay, "ttl": ttl, "priority": priority, "tags": tags or None, "queue": queue,
        "concurrency_key": concurrency_key, "idempotency_key": idempotency_key,
        "max_attempts": max_attempts, "machine": machine,
    }
    if max_duration is not None:
        # Trigger.dev takes seconds here; accepting "10m" too is kinder on a command line.
        options["max_duration"] = parse_duration(max_duration, what="--max-duration")
    return {k: v for k, v in options.items() if v is not None}


def trigger(
    task: str = typer.Argument(..., help="The task id.", autocompletion=complete_task),
    payload: str | None = typer.Option(None, "--payload", "-p",
                                       help="JSON payload, @file.json, or - for stdin."),
    wait: bool = typer.Option(False, "--wait", "-w",
                              help="Wait for the run to end, showing its status changes and logs; "
                                   "print its output. Exit 1 if it does not complete."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="With --wait: show nothing while waiting, only the output (or "
                                    "the error)."),
    delay: str | None = typer.Option(None, "--delay",
                                     help="Start later: 30s, 10m, 2h or an ISO date."),
    ttl: str | None = typer.Option(None, "--ttl",
                                   help="Expire if not started within this (e.g. 10m)."),
    priority: float | None = typer.Option(
        None, "--priority", callback=number_in(0, MAX_PRIORITY_S, " seconds"),
        help="Seconds to jump ahead in the queue (0 to 30 days)."),
    tags: list[str] = typer.Option([], "--tag", "-t", help="Tag the run (repeatable).",
                                   callback=given("an untagged run")),
    queue: str | None = typer.Option(None, "--queue", help="Run on this queue.",
                                     callback=given("the task's own queue")),
    concurrency_key: str | None = typer.Option(
        None, "--concurrency-key",
        help="Runs with the same key share the queue's concurrency limit separately from other "
             "keys (e.g. one per user)."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key",
        help="Trigger at most once per key: the same key again returns the existing run."),
    max_attempts: int | None = typer.Option(
        None, "--max-attempts", callback=number_in(1, MAX_ATTEMPTS),
        help="Attempts before the run fails (default: the task's retry policy, else 3)."),
    max_duration: str | None = typer.Option(None, "--max-duration", help="Seconds, or 10m, 1h..."),
    machine: str | None = typer.Option(None, "--machine", help="Machine preset, e.g. small-1x."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Trigger TASK with a JSON payload (none given: {})."""
    # Like Trigger.dev's test form: no payload is an empty object, so `payload.get(...)` works.
    value = read_json_arg(payload, "--payload") if payload is not None else {}
    try:
        options = build_options(delay=delay, ttl=ttl, priority=priority, tags=tags, queue=queue,
                                concurrency_key=concurrency_key, idempotency_key=idempotency_key,
                                max_attempts=max_attempts, max_duration=max_duration,
                                machine=machine)
    except ValidationError as exc:
        raise typer.BadParameter(exc.message) from None
    data, data_type = packets.encode(value)
    api = client()
    # before the trigger: the watch then sees every event of the run, the first attempt's too
    cursor = event_cursor(api) if wait and not quiet else None
    handle = api.trigger(task, data, data_type, options)
    run_id = str(handle["id"])
    if handle.get("isCached"):  # an existing run: its events, maybe its end, came before
        cursor = None           # the cursor, so the watch reads the run itself
    if not wait:
        if json_output:
            emit_json(handle)
        else:
            cached = " (an existing run: same idempotency key)" if handle.get("isCached") else ""
            err().print(f"Triggered {task}{cached}; follow it with `trigger-local runs logs "
                        f"{run_id} --follow`")
            typer.echo(run_id)
        return
    if not quiet:
        cached = " (an existing run: same idempotency key)" if handle.get("isCached") else ""
        err().print(f"Triggered {task} as {run_id}{cached}; waiting for it to end (Ctrl-C stops "
                    "waiting, not the run)")
    try:
        run = wait_until_final(api, run_id) if quiet else RunWatch(api, run_id, err, cursor).run()
    except KeyboardInterrupt:
        err().print(f"\nStopped waiting. The run goes on: follow it with "
                    f"`trigger-local runs logs {run_id} --follow`")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    _report(run, json_output, quiet)


def _report(run: dict[str, Any], json_output: bool, quiet: bool) -> None:
    """The output on stdout; a run that did not complete exits 1 (the watch already showed why,
    unless quiet)."""
    failed = run.get("status") != "COMPLETED"
    if json_output:
        emit_json(run)
    elif failed:
        if quiet:
            err().print(f"{run.get('id')} {run.get('status')}: {error_summary(run.get('error'))}",
                        markup=False)  # the task's words: "[/x]" is text
        err().print(f"See `trigger-local runs show {run.get('id')}` for its attempts and "
                    "tracebacks.")
    elif run.get("output") is not None:
        typer.echo(pretty(run["output"]))
    if failed:
        raise typer.Exit(1)
