"""The `work` loop of a task process: ask the daemon for the next attempt, run it, report it.

One attempt at a time. The `next` call is a bounded long-poll (the daemon answers as soon as
a run is assigned), so an idle process costs nothing and a warm one starts a run without
sleeping; one keep-alive connection is reused for the whole loop.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import AttemptGone, DaemonUnreachableError, TriggerLocalError
from ..sdk.worker_client import WorkerClient
from .execute import execute

RETIRED = "retired"
IDLE = "idle"
RAN = "ran"


@dataclass
class WorkerEnv:
    """What the executor hands a task process (docs/worker-protocol.md, "Starting a process")."""

    daemon_url: str
    worker_id: str
    worker_token: str
    project_dir: str
    task_dirs: list[str]
    version_id: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerEnv:
        env = os.environ if environ is None else environ
        return cls(daemon_url=env.get("TRIGGER_LOCAL_DAEMON_URL", "http://127.0.0.1:8030"),
                   worker_id=env.get("TRIGGER_LOCAL_WORKER_ID", ""),
                   worker_token=env.get("TRIGGER_LOCAL_WORKER_TOKEN", ""),
                   project_dir=env.get("TRIGGER_LOCAL_PROJECT_DIR") or os.getcwd(),
                   task_dirs=_task_dirs(env.get("TRIGGER_LOCAL_TASK_DIRS")),
                   version_id=env.get("TRIGGER_LOCAL_VERSION_ID"))


def _task_dirs(raw: str | None) -> list[str]:
    if not raw:
        return ["trigger"]
    value = json.loads(raw)
    return [value] if isinstance(value, str) else [str(v) for v in value]


class Worker:
    """Steps with `tick()` (one `next` and, if assigned, one attempt); `run()` loops until the
    daemon retires the process. `run()` returns the process exit code."""

    def __init__(self, client: WorkerClient, worker_id: str, worker_token: str, *,
                 wait_s: float = 20) -> None:
        self.client, self.worker_id, self.worker_token = client, worker_id, worker_token
        self.wait_s = wait_s
        self.runs_done = 0
        self._next: dict[str, Any] | None = None  # an answer to `next` that came with `complete`

    async def tick(self) -> str:
        answer, self._next = self._next, None
        if answer is None:
            answer = await self.client.next_assignment(self.worker_id, self.worker_token,
                                                       self.wait_s)
        if answer.get("retire"):
            return RETIRED
        assignment = answer.get("assignment")
        if not assignment:
            return IDLE
        body = await execute(assignment, self.client)
        if body is not None:
            await self._complete(assignment, body)
        self.runs_done += 1
        return RAN

    async def _complete(self, assignment: dict[str, Any], body: dict[str, Any]) -> None:
        route = f"attempts/{assignment['attempt']}/complete"
        # ask for the next run in the same request (the daemon long-polls it like `next`)
        body = {**body, "next": {"workerId": self.worker_id, "workerToken": self.worker_token,
                                 "waitS": self.wait_s}}
        try:
            answer = await self.client.run_call("POST", assignment["run_id"], route,
                                                assignment["run_token"], body,
                                                read_timeout_s=self.wait_s)
            if isinstance(answer, dict) and isinstance(answer.get("next"), dict):
                self._next = answer["next"]
        except AttemptGone:
            pass  # the daemon moved on (canceled, timed out): nothing left to report

    async def run(self) -> int:
        try:
            while await self.tick() != RETIRED:
                pass
            return 0
        except DaemonUnreachableError as exc:
            print(f"trigger-local worker {self.worker_id}: {exc}; exiting", file=sys.stderr)
            return 3
        except (TriggerLocalError, AttemptGone) as exc:
            print(f"trigger-local worker {self.worker_id}: the daemon refused this worker: {exc}",
                  file=sys.stderr)
            return 2
        finally:
            await self.client.aclose()
