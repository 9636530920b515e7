"""`trigger-local dev`: register this project with the daemon, re-register on every change
(cli/dev_watch.py), and stream what its runs do.

The daemon serves several projects; dev registers its own (the `project` ref of trigger.toml)
and holds a session of it (its event stream, which also shows only this project's runs). While
no dev of a project runs, its runs wait as QUEUED (docs/architecture.md, "Projects").

A module that fails to import does not stop anything: the traceback is printed and the
daemon keeps serving the last version that registered (dev says which, or that there is none
yet). Ctrl-C (or SIGTERM, SIGHUP) stops
watching, and stops the daemon only if this command started it, at whatever moment of its start
it comes (cli/daemon_start.py)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.text import Text

from ..config import ProjectConfig, find_project_root, load_project
from ..errors import ForbiddenError, TriggerLocalError, ValidationError
from ..limits import ENV_TOTAL_MAX_BYTES, ENV_VAR_MAX_BYTES
from ..sdk.client import SyncApiClient, read_secret_key
from ..sdk.events import OPEN, iter_events
from ..settings_checks import check_task_env
from .common import client, err, fail, key_project, number_in, out, print_error
from .daemon_cmds import settings_for
from .daemon_presence import DaemonPresence
from .daemon_start import (
    Spawned,
    end_on_signals,
    ignore_signals,
    running_daemon,
    signals_held,
    spawn,
    stop_spawned,
    wait_answering,
)
from .dev_lock import hold_dev_lock
from .dev_watch import DevWatcher
from .dotenv import read_dotenv
from .render import log_line
from .run_events import StatusLines

Json = dict[str, Any]

#: ours, or the daemon's own: never handed on to task processes
_PRIVATE_ENV = ("TRIGGER_LOCAL_", "TRIGGER_API_URL", "TRIGGER_SECRET_KEY")
CATCH_UP_EVENTS = 500  # how far back `dev` looks, when it connects, for runs started again




def task_env(root: Path) -> dict[str, str]:
    """This terminal's environment plus the project's `.env`, for the task processes;
    ValidationError for a `.env` that is not UTF-8 text, or an environment no process can get."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
    dotenv = root / ".env"
    env.update(read_dotenv(dotenv))
    _check_env_size(env, dotenv)
    check_task_env(env)
    return env


def _check_env_size(env: dict[str, str], dotenv: Path) -> None:
    sizes = {k: len(f"{k}={v}".encode(errors="surrogateescape")) + 1 for k, v in env.items()}
    biggest = max(sizes, key=sizes.__getitem__, default=None)
    if biggest is None:
        return
    if sizes[biggest] > ENV_VAR_MAX_BYTES or sum(sizes.values()) > ENV_TOTAL_MAX_BYTES:
        raise ValidationError(
            f"The task processes' environment is too big to start a process: {biggest} (from "
            f"{dotenv} or this terminal) is {sizes[biggest]:,} bytes and all of it "
            f"{sum(sizes.values()):,} (at most {ENV_VAR_MAX_BYTES:,} bytes a variable and "
            f"{ENV_TOTAL_MAX_BYTES:,} in all). Put large values in a file and pass its path.")


def register(api: SyncApiClient, config: ProjectConfig, served: str) -> str | None:
    """Index and register the project with its trigger.toml defaults ([retry], machine,
    max_duration); print its tasks, or the import error and what is still served of the
    project (`served`, dev's, unless the config names one). The project's ref if it took.
    A config naming no project leaves the ref to the daemon: a project key's project, else
    the one the directory's name derives."""
    try:
        answer = api.register_version(project_dir=str(config.root), dirs=config.dirs,
                                      python=sys.executable, env=task_env(config.root),
                                      project=config.project if config.named else None,
                                      dev=True, defaults=config.task_defaults())
    except ForbiddenError as exc:  # the key is another project's: say what to change
        raise ForbiddenError(f"{exc.message.removesuffix('.')}: {config.root} is project "
                             f"{config.project} (its trigger.toml's `project`). Set "
                             "TRIGGER_SECRET_KEY to that project's key, or unset it for the "
                             "daemon's.") from exc
    except ValidationError as exc:
        print_error(exc.message)
        trace = exc.details.get("traceback")
        if trace:
            err().print(Text(str(trace).rstrip(), style="dim"))
        ref = config.project if config.named else served
        err().print(f"[yellow]{escape(served_note(api, ref))}[/yellow]")
        return None
    nested = answer.get("version")
    version: Json = nested if isinstance(nested, dict) else answer
    tasks = version.get("tasks") or []
    ids = sorted(str(t.get("id") or t.get("task_id")) for t in tasks if isinstance(t, dict))
    # task ids, folders and paths are the user's: text, not markup
    err().print(f"[green]Registered[/green] {version.get('id', 'a new version')} with "
                f"{len(ids)} task{'s' if len(ids) != 1 else ''}: "
                f"{escape(', '.join(ids)) or '(none)'}")
    if not ids:
        err().print(f"No tasks found in {escape(', '.join(config.dirs))}: define one with "
                    "@task(id=...).")
    return str(version.get("project") or config.project)


def served_note(api: SyncApiClient, ref: str) -> str:
    """What the daemon serves of project `ref` after a registration failed: the version it
    had (the last that registered), or nothing: none ever registered."""
    try:
        found = [p for p in api.list_projects().get("data") or [] if p.get("ref") == ref]
    except TriggerLocalError:
        found = []
    current = found[0].get("currentVersion") if found else None
    if current:
        return f"Still serving {current}, the last version that registered; fix it and save."
    return (f"Nothing of {ref} is served yet: no version of it has registered, so its runs "
            "wait. Fix it and save.")


def own_key(home: Path) -> bool:
    """Whether dev talks with the daemon's own key (none set, or the home's), not a project's:
    then the project it serves is known before any daemon answers."""
    key = os.environ.get("TRIGGER_SECRET_KEY")
    return not key or key == read_secret_key(home)


def dev_project(api: SyncApiClient, config: ProjectConfig) -> str:
    """The project dev serves when its config names none and its key is a project's (not
    `own_key`): that key's project (the only one it lists: the daemon registers the directory
    as it); else the one the directory's name derives."""
    try:
        ref = key_project(api)
    except TriggerLocalError:
        ref = None
    return config.project if ref is None else ref


def show_project(api: SyncApiClient, config: ProjectConfig, ref: str) -> None:
    """The project's ref and its own key (for code that should reach this project only)."""
    try:
        found = [p for p in api.list_projects().get("data") or [] if p.get("ref") == ref]
    except TriggerLocalError:
        return  # an older daemon: nothing to show
    key = f"; its key: {found[0]['key']}" if found and found[0].get("key") else ""
    err().print(f"Project [bold]{ref}[/bold] ({escape(str(config.root))}){key}")


class RunStream:
    """Prints run starts, ends and their log lines as the daemon's event stream delivers them;
    a failed attempt shows its error, a failed run also the end of its traceback. The stream is
    this project's only, and it is the dev session that keeps the project online."""

    def __init__(self, api: SyncApiClient, project: str | None = None,
                 started: Spawned | None = None) -> None:
        self.api = api
        self.project = project
        self.started = started
        self._caught_up = False
        #: a daemon dev did not start: says when it is gone and back (`_on_state`)
        self.presence = DaemonPresence(
            api, err,
            "no run of this project starts until it is back. Start it with `trigger-local up`; "
            "dev goes on when it answers.", "watching its runs.")
        self.status_lines = StatusLines(api)

    def run(self) -> None:
        for event in iter_events(self.api, types=["run."], project=self.project,
                                 session=self.project is not None, on_state=self._on_state):
            if event.get("type") == OPEN:
                self.catch_up(event.get("seq"))
            else:
                self.on_event(event)

    def _on_state(self, connected: bool) -> None:
        """The stream was lost: if the daemon dev started has exited (it stopped itself, or was
        killed), say why and end with exit code 1. A daemon dev did not start (`up --detach`)
        may come back: dev keeps trying, and `presence` (daemon_presence.py) says when it is
        gone and when it is back."""
        if self.started is None:
            self.presence(connected)
            return
        if connected:
            return
        why = self.started.exit_reason()
        if why is not None:
            fail(f"The daemon dev started (pid {self.started.pid}) stopped. {why}\n"
                 "Start `trigger-local dev` again (its runs keep their place).")

    def catch_up(self, seq: Any) -> None:
        """Once, when the stream first opens: the runs interrupted by the last stop that this
        daemon already started again (it does so at once, before `dev` is connected)."""
        if self._caught_up or not isinstance(seq, int):
            return
        self._caught_up = True
        try:
            started_at = float(self.api.status().get("started_at") or 0)
            page = self.api.events(after=max(0, seq - CATCH_UP_EVENTS), limit=CATCH_UP_EVENTS)
        except (TriggerLocalError, ValueError, TypeError):
            return
        for event in page.get("data") or []:
            data = event.get("data") or {}
            if self.project is not None and data.get("project") not in (None, self.project):
                continue  # another project's run
            # up to `seq` only: the stream itself delivers what came after
            if int(event.get("seq") or 0) <= seq and data.get("interrupted_by") \
                    and _epoch(event.get("at")) >= started_at:
                self.on_event(event)

    def on_event(self, event: Json) -> None:
        data, run_id = event.get("data") or {}, event.get("runId") or event.get("run_id")
        if run_id and event.get("logs"):
            for entry in event["logs"]:
                out().print(log_line(entry, run_id))
            return
        described = self.status_lines.describe(event)
        if described is None:
            return
        line = Text()
        line.append(f"{run_id} {data.get('task_id', '')} ", style="bold")
        line.append_text(described)
        err().print(line)


def _epoch(at: Any) -> float:
    try:
        return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def dev(
    port: int | None = typer.Option(None, "--port", callback=number_in(0, 65535),
                                    help="Daemon port when dev starts one (default: "
                                         "$TRIGGER_LOCAL_PORT, else 8030)."),
    executor: str | None = typer.Option(None, "--executor",
                                        help="process or docker (default: trigger.toml's)."),
) -> None:
    """Register this project's tasks, re-register on change, and stream runs and logs."""
    root = find_project_root(Path.cwd())
    if root is None:
        fail("No trigger.toml here or in any parent directory. Create one with `trigger-local "
             "init`.")
    config = load_project(root)
    settings = settings_for(port=port, executor=executor or config.executor)
    known = config.named or own_key(settings.home)  # the project, without asking a daemon
    # the lock before a daemon is used, when the project is known without one (a project
    # key's project only the daemon knows: taken once it answers, before registering)
    lock = hold_dev_lock(settings.home, config.project, root) if known else None
    end_on_signals()  # SIGTERM and SIGHUP end dev as Ctrl-C does: the cleanup below runs
    started: Spawned | None = None
    watcher: DevWatcher | None = None
    ref: str | None = None
    try:
        info = running_daemon(settings.home)
        if info is None:
            with signals_held():  # no signal between the spawn and knowing what to stop
                started = spawn(settings)
            url = wait_answering(settings, started)
            err().print(f"Started a daemon at {url} (pid {started.pid}); Ctrl-C stops it.")
        else:
            err().print(f"Using the daemon at {info['url']} (pid {info.get('pid')}).")
        api = client()
        served = config.project if known else dev_project(api, config)
        if lock is None:
            lock = hold_dev_lock(settings.home, served, root, by_key=True)
        if lock.problem:
            err().print(lock.warning(served))
        watcher = DevWatcher(config, lambda current: register(api, current, served))
        watcher.start()  # before the first registration: a change made meanwhile is not missed
        ref = register(api, config, served) or served
        show_project(api, config, ref)
        RunStream(api, ref, started).run()
    except KeyboardInterrupt:
        err().print("\nStopping.")
    finally:
        ignore_signals()  # a second Ctrl-C must not leave the daemon running
        if watcher is not None:
            watcher.close()
        ref = ref or config.project
        waiting = _waiting_runs(ref) if started is not None else None
        if started is not None and stop_spawned(started, settings.shutdown_grace_s + 15):
            err().print(f"Stopped the daemon dev started (pid {started.pid}).")
            if waiting:
                err().print(waiting_note(*waiting, ref))


def waiting_note(count: int, more: bool, project: str) -> str:
    """What dev says at its stop about `count` (`more`: at least that many) waiting runs."""
    if count == 1 and not more:
        return (f"1 run of {project} waiting: it keeps its place and goes on under the next "
                "`trigger-local dev`.")
    return (f"{count}{'+' if more else ''} runs of {project} waiting: they keep their place "
            "and go on under the next `trigger-local dev`.")


def _waiting_runs(project: str) -> tuple[int, bool] | None:
    """How many runs of `project` are WAITING, and whether there are more than one page
    (asked before the stop, so that dev can say they keep their place); None when there are
    none or the daemon cannot say."""
    try:
        page = client().list_runs(status=["WAITING"], project=[project], limit=100)
    except TriggerLocalError:
        return None
    count = len(page.get("data") or [])
    more = bool((page.get("pagination") or {}).get("next"))
    return (count, more) if count else None
