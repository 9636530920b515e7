"""`dev`'s watcher: the project is registered again when a task module changes (under its
`dirs`) or its config does (`trigger.toml`, `pyproject.toml` or `.env` at the project root:
`dirs`, `retry`, the task environment...). Two threads: one watches the task directories
recursively, one the root alone (watching the root recursively would also watch `.venv` and
`node_modules`); when `dirs` changes, the first starts over on the new directories."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles
from rich.markup import escape

from ..config import ProjectConfig, load_project
from ..errors import TriggerLocalError
from .common import err, explain, print_error

CONFIG_FILES = frozenset({"trigger.toml", "pyproject.toml", ".env"})


class _Either:
    """Set when any of its events is (watchfiles only asks `is_set()`)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class DevWatcher:
    """Calls `register(config)` after each change, with the config as it is then."""

    def __init__(self, config: ProjectConfig, register: Callable[[ProjectConfig], object]) -> None:
        self.config = config
        self._register = register
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self._dirs_changed = threading.Event()
        self._threads = [threading.Thread(target=self._watch_tasks, daemon=True,
                                          name="dev-watch-tasks"),
                         threading.Thread(target=self._watch_config, daemon=True,
                                          name="dev-watch-config")]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self.stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout_s)

    def reregister(self, why: str) -> None:
        with self._lock:  # both threads may see a change at once: one registration at a time
            err().print(f"[dim]{why}; re-registering…[/dim]")
            try:
                self._register(self.config)
            except TriggerLocalError as exc:  # daemon gone or restarting: keep watching
                print_error(explain(exc))

    def _watch_tasks(self) -> None:
        while not self.stop.is_set():
            self._dirs_changed.clear()
            root, names = self.config.root, self.config.dirs
            dirs = [root / d for d in names if (root / d).is_dir()]
            until = _Either(self.stop, self._dirs_changed)
            if not dirs:
                err().print(f"[yellow]None of {escape(str(names))} exists under "
                            f"{escape(str(root))}; watching trigger.toml only.[/yellow]")
                while not until.is_set():
                    self.stop.wait(0.2)
                continue
            for _changes in watchfiles.watch(*dirs, watch_filter=watchfiles.PythonFilter(),
                                             stop_event=until):
                self.reregister("Files changed")

    def _watch_config(self) -> None:
        root = self.config.root
        def is_config(_change: object, path: str) -> bool:
            return Path(path).name in CONFIG_FILES

        for _changes in watchfiles.watch(root, recursive=False, stop_event=self.stop,
                                         watch_filter=is_config):
            try:
                config = load_project(root)
            except (TriggerLocalError, OSError) as exc:
                print_error(f"{getattr(exc, 'message', exc)} — still serving the last version that "
                            "registered.")
                continue
            if config.project != self.config.project:
                err().print(f"[yellow]The project ref changed ({self.config.project} → "
                            f"{config.project}); restart `trigger-local dev` to serve it under the "
                            "new one.[/yellow]")
                config.project = self.config.project
            dirs_changed = config.dirs != self.config.dirs
            self.config = config
            if dirs_changed:
                self._dirs_changed.set()
            self.reregister("Project config changed")
