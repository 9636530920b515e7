"""What the HTTP API needs from the daemon around it. The daemon implements this; tests pass a
small in-process version. Keeping it a Protocol lets the API be built and tested without
executors, the dispatcher or subprocesses."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from ..config import DaemonSettings
from ..engine import Engine
from ..store.models import ProjectDefaults, Version


class DaemonServices(Protocol):
    engine: Engine
    settings: DaemonSettings
    secret_key: str

    async def next_assignment(self, worker_id: str, wait_s: float, ack: int | None = None
                              ) -> dict[str, Any] | list[dict[str, Any]] | None | Literal["retire"]:
        """The next run for worker `worker_id`, waiting up to `wait_s` seconds for one.

        Returns the Assignment dict of docs/worker-protocol.md (the API adds `run_token` when it
        is missing), None when nothing came in time, or "retire" when the process should exit.
        A shared process gets its messages (a list; `ack`: the last one it got before)."""
        ...

    async def index_project(self, project_dir: str, dirs: list[str], python: str | None,
                            env: dict[str, str], image: str | None = None, *, project: str,
                            dev: bool = False, defaults: ProjectDefaults | None = None) -> Version:
        """Index the project and register the resulting version as project `project`'s current
        one (`dev`: a `trigger-local dev` holds a session for it, engine/projects.py). With
        `image` (a deployed project), the tasks are indexed inside that image and the version is
        locked to it. `defaults` (the project's trigger.toml) are stored with the version.

        Raises ValidationError(message, traceback=...) when a module fails to import."""
        ...

    def health(self) -> dict[str, Any]:
        """`{"ok": bool, "loops": {name: {"running", "failing", "failures", "error", ...}}}`:
        what `/healthz` answers (supervise.py)."""
        ...

    def status(self) -> dict[str, Any]:
        """The daemon's state for `/api/v1/local/status`: executor, pid, version, counts."""
        ...
