"""What every command shares: the two consoles, JSON output, argument parsing, and turning
errors into one sentence on stderr that says what to do next.

stdout carries only results (a table, or exactly one JSON document with --json), so
`trigger-local runs ls --json | jq` always works; everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ..config import home_dir
from ..errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    DaemonConnectionLostError,
    DaemonNotRunningError,
    NotFoundError,
    ProjectNotFoundError,
    TaskNotFoundError,
    TriggerLocalError,
)
from ..limits import BODY_OVERHEAD_BYTES, MAX_PAYLOAD_LIMIT_BYTES
from ..projects import PROJECT_ENV
from ..sdk.client import SyncApiClient, get_sync_client, read_daemon_info, resolve_endpoint
from ..strict_json import loads_strict

PIPE_WIDTH = 240
#: the daemon's hint when the project a request names is unknown (api/common.py)
_HEADER_HINT = "fix TRIGGER_LOCAL_PROJECT (the x-trigger-local-project header)"
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")


def out() -> Console:
    # Built per call: CliRunner swaps sys.stdout, and a console keeps the file it was given.
    # Piped output gets a wide page so that ids are never cut to fit 80 columns.
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, width=width)


def err() -> Console:
    # soft_wrap: the terminal wraps long lines, so URLs and commands stay copyable.
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


_Number = TypeVar("_Number", int, float)


def number_in(lo: int, hi: int, unit: str = "") -> Callable[[Any], Any]:
    """A typer callback for a numeric flag: its value when it lies from `lo` to `hi`, else a
    usage error naming the range (click names the flag). click's own range check lets NaN
    through, and a number too big for a float (1e400) reaches it as inf; both would only fail
    later, in a message about JSON or a wire field."""

    def check(value: _Number | None) -> _Number | None:
        if value is not None and not lo <= value <= hi:  # NaN compares false both ways
            raise typer.BadParameter(f"must be from {lo:,} to {hi:,}{unit}, not {value}")
        return value

    return check


def given(what: str) -> Callable[[Any], Any]:
    """A typer callback for a string flag (or a repeatable one): an empty value is a usage
    error naming the flag and saying what leaving it out does; `--tag ""` listed every run,
    `--queue ""` put the run on its task's queue, in silence."""

    def check(value: Any) -> Any:
        if any(not v.strip() for v in ([value] if isinstance(value, str) else value or [])):
            raise typer.BadParameter(f"must not be empty (leave it out for {what})")
        return value

    return check


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def print_error(message: str) -> None:
    # Text, not markup: messages quote user input and paths that may contain "[".
    err().print(Text.assemble(("Error: ", "bold red"), message))


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def client() -> SyncApiClient:
    return get_sync_client()


def key_project(api: SyncApiClient) -> str | None:
    """The project of `api`'s key when that is a project's: the one project it lists (a
    project key lists its own only); None when it lists none or several."""
    listed = api.list_projects().get("data") or []
    return str(listed[0].get("ref")) if len(listed) == 1 else None


def read_json_arg(value: str, option: str) -> Any:
    """`--payload '{"a": 1}'`, `--payload @file.json` or `--payload -` (stdin), parsed as JSON."""
    if value == "-":
        text, where = _read_text(sys.stdin.buffer, option, "stdin"), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            with path.open("rb") as stream:
                text = _read_text(stream, option, f"file {path}")
        except OSError as exc:
            fail(f"Cannot read {option} file {path}: {exc.strerror}. Check the path after '@'.")
        where = str(path)
    else:
        text, where = value, f"the {option} value"
    try:  # the daemon's own rules: no NaN or Infinity (1e400), no nesting past its limit
        return loads_strict(text, option)
    except BadRequestError as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            fail(f"{option} is not valid JSON: {cause.msg} at line {cause.lineno} column "
                 f"{cause.colno} of {where}. Quote it for your shell, e.g. "
                 f"{option} '{{\"name\": \"Ada\"}}', or pass @file.json.")
        fail(f"{exc.message} (in {where})")


#: the most of a file or stdin an option reads: the largest payload any daemon takes, and the
#: JSON around it (`--payload @/dev/zero` stops there, with one line, not out of memory)
MAX_ARGUMENT_BYTES = MAX_PAYLOAD_LIMIT_BYTES + BODY_OVERHEAD_BYTES
READ_PIECE_BYTES = 1024 * 1024


def _read_text(stream: BinaryIO, option: str, where: str) -> str:
    """UTF-8 text of at most MAX_ARGUMENT_BYTES from `stream`, else one line saying why."""
    # in pieces: read(n) allocates its n bytes first, and 512 MiB for a file of a few bytes
    # was a MemoryError traceback under an address-space limit (`ulimit -v`)
    data = bytearray()
    while len(data) <= MAX_ARGUMENT_BYTES and (piece := stream.read(READ_PIECE_BYTES)):
        data += piece
    if len(data) > MAX_ARGUMENT_BYTES:
        fail(f"{option} {where} holds more than {MAX_ARGUMENT_BYTES:,} bytes, more than any "
             "daemon takes (payload_limit_bytes, docs/configuration.md). Pass a reference (a "
             "path or URL) instead of the data.")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        fail(f"{option} {where} is not UTF-8 text (byte {exc.start}); JSON is UTF-8.")


def explain(exc: TriggerLocalError) -> str:
    """The error as a sentence plus what to do about it."""
    message = exc.message.rstrip().replace("queue-not-found", "Queue not found")
    if isinstance(exc, ProjectNotFoundError) and not os.environ.get(PROJECT_ENV):
        # the CLI named the project of the trigger.toml around it, not the variable
        return message.replace(_HEADER_HINT, "check `project` in this directory's trigger.toml")
    if isinstance(exc, DaemonNotRunningError | DaemonConnectionLostError | ProjectNotFoundError):
        return message
    if re.fullmatch(r"HTTP \d{3}", message):  # no error body of ours: "Error: HTTP 404" alone
        return (f"{resolve_endpoint().base_url} answered {message} with no trigger-local error: "
                "another program listens there, not the trigger-local daemon. Start the daemon "
                "on a free port (`trigger-local up --port N`) and set TRIGGER_LOCAL_PORT (or "
                "TRIGGER_API_URL) to it.")
    if isinstance(exc, ApiError) and exc.status >= 500:  # a bug or a passing failure there
        return (f"The daemon failed on this request ({exc.status}: {message.rstrip('.')}). Its "
                "log ($TRIGGER_LOCAL_HOME/logs/daemon.log) says why; try again, and report it "
                "if it happens again.")
    if isinstance(exc, AuthenticationError):
        return _unauthenticated(message)
    scheduled = exc.details.get("scheduled_tasks")
    if isinstance(scheduled, dict):
        return _schedule_tasks(message, exc.details.get("project"), scheduled)
    known = exc.details.get("known_tasks")
    if isinstance(exc, TaskNotFoundError) or known is not None:
        names = ", ".join(str(k) for k in known or []) or "none registered yet"
        if "Known tasks" in message or "known tasks" in message:
            return message
        return (f"{message} Known tasks: {names}. Run `trigger-local dev` in your project to "
                "register its tasks.")
    if isinstance(exc, NotFoundError):
        for thing, command in (("queue", "queues ls"), ("waitpoint", "tokens ls"),
                               ("schedule", "schedules ls"), ("run", "runs ls")):
            if thing in message.lower():
                return f"{message.rstrip('.')}. List them with `trigger-local {command}`."
    return message


def _schedule_tasks(message: str, project: Any, scheduled: dict[str, Any]) -> str:
    """A schedule's task that is not there (or not a scheduled task): the project, and the
    tasks a schedule can name."""
    message = message.replace("not found in project.", f"not found in project {project}."
                              if project else "not found in any project.")
    found = {ref: ", ".join(map(str, ids)) for ref, ids in scheduled.items() if ids}
    if not found:
        where = f"{project} has" if project else "No project has"
        return (f"{message} {where} no scheduled task: declare one with @schedules.task and "
                "run `trigger-local dev`.")
    if project:
        return f"{message} Tasks it can schedule: {found.get(str(project), '')}."
    return f"{message} Scheduled tasks: {'; '.join(f'{r}: {t}' for r, t in found.items())}."


def _unauthenticated(message: str) -> str:
    """A 401. With no key at all (a home whose daemon never ran, `--home` somewhere else), or
    the home's own key (TRIGGER_API_URL reaching another home's daemon), the daemon that
    answered is another home's: "check TRIGGER_SECRET_KEY" sent the user to a variable they
    never set."""
    endpoint, key_file = resolve_endpoint(), home_dir() / "secret_key"
    fix = (f"The daemon at {endpoint.base_url} belongs to another home: point --home (or "
           "TRIGGER_LOCAL_HOME) at its home, or set TRIGGER_SECRET_KEY to its key.")
    if endpoint.secret_key is None:
        return f"{message}: no key was sent, as {key_file} does not exist. {fix}"
    home_url = str((read_daemon_info() or {}).get("url") or "").rstrip("/")
    if not os.environ.get("TRIGGER_SECRET_KEY") and endpoint.base_url != home_url:
        return f"{message}: the daemon refused the key in {key_file}. {fix}"
    return (f"{message}. The daemon refused the secret key: check TRIGGER_SECRET_KEY, or unset "
            "it to use the key in $TRIGGER_LOCAL_HOME/secret_key.")


def _tidy_help(command: Any, ctx: Any) -> None:
    """Flags take no value, so their help shows no type (typer prints `<bool>` after each),
    and arguments read as in the README (`TASK`, not `{task}`). Done once per command, for its
    subcommands too, and for the help option, which click makes only when asked."""
    if getattr(command, "_help_tidied", False):
        return
    command._help_tidied = True
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif getattr(param, "param_type_name", "") == "argument" and param.name:
            if param.metavar is None:
                param.metavar = param.name.upper()
            if param.required:
                param.callback = _not_blank(param.name, param.callback)
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub, ctx)


# What a required argument names when it is given blank (`runs replay ''`): without this
# check the blank id reaches the URL and the daemon answers only "Resource not found".
_ARGUMENT_NAMES = {"run_id": "a run id (run_…)", "token_id": "a token id (waitpoint_…)",
                   "task": "a task id", "name": "a queue name (or a task id)",
                   "schedule_id": "a schedule id (sched_…)"}


def _not_blank(name: str, then: Callable[..., Any] | None) -> Callable[..., Any]:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            what = _ARGUMENT_NAMES.get(name, f"a {name.replace('_', ' ')}")
            fail(f"{what[0].upper()}{what[1:]} is required, not {value!r}. See "
                 f"`trigger-local {ctx.command_path.split(' ', 1)[-1]} --help`.")
        return then(ctx, param, value) if then is not None else value

    return check


class CliGroup(TyperGroup):
    """Turns trigger-local's errors, wherever raised below, into stderr + exit code 1, and
    keeps `<bool>` out of every command's help."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        _tidy_help(self, ctx)
        return super().get_command(ctx, cmd_name)

    def get_help_option(self, ctx: Any) -> Any:
        _tidy_help(self, ctx)
        return super().get_help_option(ctx)

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except TriggerLocalError as exc:
            print_error(explain(exc))
            raise typer.Exit(1) from None
        except TimeoutError as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None
