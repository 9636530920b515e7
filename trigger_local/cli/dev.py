"""`trigger-local dev`: register this project with the daemon, re-register on every change,
and stream what its runs do.

A module that fails to import does not stop anything: the traceback is printed and the
daemon keeps serving the last version that imported. Ctrl-C stops watching, and stops the
daemon only if this command started it."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import typer
import watchfiles
from rich.text import Text

from ..config import ProjectConfig, find_project_root, load_project
from ..errors import TriggerLocalError, ValidationError
from ..sdk.client import SyncApiClient
from ..sdk.events import iter_events
from .common import client, err, fail, out, print_error
from .daemon_cmds import running_daemon, settings_for, start_detached, stop_pid
from .render import log_line, status_text

Json = dict[str, Any]

#: ours, or the daemon's own: never handed on to task processes
_PRIVATE_ENV = ("TRIGGER_LOCAL_", "TRIGGER_API_URL", "TRIGGER_SECRET_KEY")
SHOWN = {"EXECUTING", "WAITING", "COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE",
         "EXPIRED", "TIMED_OUT"}


def task_env(root: Path) -> dict[str, str]:
    """This terminal's environment plus the project's `.env`, for the task processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
    dotenv = root / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and key and not key.startswith("#"):
                env[key.strip()] = value.strip().strip("'\"")
    return env


def register(api: SyncApiClient, config: ProjectConfig) -> bool:
    """Index and register the project with its trigger.toml defaults ([retry], machine,
    max_duration); print its tasks, or the import error. True if it took."""
    try:
        answer = api.register_version(project_dir=str(config.root), dirs=config.dirs,
                                      python=sys.executable, env=task_env(config.root),
                                      defaults=config.task_defaults())
    except ValidationError as exc:
        print_error(exc.message)
        trace = exc.details.get("traceback")
        if trace:
            err().print(Text(str(trace).rstrip(), style="dim"))
        err().print("[yellow]Still serving the last version that imported; fix the file and save.[/yellow]")
        return False
    nested = answer.get("version")
    version: Json = nested if isinstance(nested, dict) else answer
    tasks = version.get("tasks") or []
    ids = sorted(str(t.get("id") or t.get("task_id")) for t in tasks if isinstance(t, dict))
    err().print(f"[green]Registered[/green] {version.get('id', 'a new version')} with "
                f"{len(ids)} task{'s' if len(ids) != 1 else ''}: {', '.join(ids) or '(none)'}")
    if not ids:
        err().print(f"No tasks found in {', '.join(config.dirs)}: define one with @task(id=...).")
    return True


def watch_loop(api: SyncApiClient, config: ProjectConfig, stop: threading.Event) -> None:
    """Re-register on every change of a task module or of trigger.toml, re-reading trigger.toml
    each time (a broken trigger.toml is reported and the last good one stays in use)."""
    dirs = [config.root / d for d in config.dirs if (config.root / d).is_dir()]
    if not dirs:
        err().print(f"[yellow]None of {config.dirs} exists under {config.root}; not watching.[/yellow]")
        return
    toml = config.root / "trigger.toml"
    paths = [*dirs, toml] if toml.is_file() else dirs
    watch_filter = watchfiles.PythonFilter(extra_extensions=(".toml",))
    for _changes in watchfiles.watch(*paths, watch_filter=watch_filter, stop_event=stop):
        err().print("[dim]Files changed; re-registering…[/dim]")
        try:
            config = load_project(config.root)
        except ValidationError as exc:
            print_error(f"{exc.message}. Still using the trigger.toml read before; fix it and save.")
        try:
            register(api, config)
        except TriggerLocalError as exc:  # daemon gone or restarting: keep watching
            print_error(exc.message)


class RunStream:
    """Prints run starts, ends and their log lines as the daemon's event stream delivers them."""

    def __init__(self, api: SyncApiClient) -> None:
        self.api = api

    def run(self) -> None:
        for event in iter_events(self.api, types=["run."]):
            self.on_event(event)

    def on_event(self, event: Json) -> None:
        data, run_id = event.get("data") or {}, event.get("runId") or event.get("run_id")
        if run_id and event.get("logs"):
            for entry in event["logs"]:
                out().print(log_line(entry, run_id))
            return
        status = data.get("status")
        if not run_id or not str(event.get("type", "")).startswith("run.") or status is None:
            return
        line = Text(f"{run_id} {data.get('task_id', '')} ", style="bold")
        if event.get("type") == "run.retrying":
            retry_in = data.get("retry_in_s")
            when = f"in {retry_in:.1f}s" if isinstance(retry_in, int | float) else "soon"
            on = f" on {data['machine']} (out of memory)" if data.get("machine") else ""
            line.append(f"attempt {data.get('attempt', '?')} failed; retrying{on} {when}", style="yellow")
            err().print(line)
        elif status in SHOWN and status != data.get("from"):
            line.append_text(status_text(status))
            err().print(line)


def dev(
    port: int | None = typer.Option(None, "--port", help="Daemon port when dev starts one (default: 8030)."),
    executor: str | None = typer.Option(None, "--executor", help="process or docker (default: trigger.toml's)."),
) -> None:
    """Register this project's tasks, re-register on change, and stream runs and logs."""
    root = find_project_root(Path.cwd())
    if root is None:
        fail("No trigger.toml here or in any parent directory. Create one with `trigger-local init`.")
    config = load_project(root)
    settings = settings_for(port=port, executor=executor or config.executor)
    started_pid = None
    info = running_daemon(settings.home)
    if info is None:
        url, started_pid = start_detached(settings)
        err().print(f"Started a daemon at {url} (pid {started_pid}); Ctrl-C stops it.")
    else:
        err().print(f"Using the daemon at {info['url']} (pid {info.get('pid')}).")
    api = client()
    register(api, config)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_loop, args=(api, config, stop), daemon=True, name="dev-watch")
    watcher.start()
    try:
        RunStream(api).run()
    except KeyboardInterrupt:
        err().print("\nStopping.")
    finally:
        stop.set()
        watcher.join(timeout=5)
        if started_pid is not None:
            stop_pid(started_pid, settings.shutdown_grace_s + 15)
            err().print(f"Stopped the daemon dev started (pid {started_pid}).")
