"""Checkpointing the docker executor's waiting runs with `docker checkpoint` (docs/checkpoints.md).

Freeze: the same handshake as for a process (the runtime closes its connections, POSTs `freeze`,
then waits for a done file, here in a per-worker host directory bind-mounted into the
container); the daemon then asks the engine to checkpoint the container and stop it. The
stopped container is kept, with its checkpoint inside the engine's directory; its slot among
`max_processes` is free. Any failure leaves the container running and the run held.

Restore: `executor.resume(run)` starts the same container from its checkpoint; the runtime
continues where it stopped. A failed restore removes the container and resumes the run by
replay (docs/durability.md): a new attempt, not counted, that replays the run's records. A run
that ends while checkpointed has its container removed.

The engine is called through its HTTP API (`POST /containers/{id}/checkpoints`, `POST
/containers/{id}/start?checkpoint=`), on the docker SDK's low-level client the executor already
holds, rather than by running the `docker` CLI: the same connection (DOCKER_HOST, the pinned API
version), the engine's own error message, no dependence on a CLI binary in the daemon's PATH,
and no CLI process start (≈ 30–40 ms here) on each side of a wait. The SDK has no method for these
experimental endpoints, hence the plain requests below.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import structlog
from docker.errors import DockerException

from ..errors import DockerCheckpointError
from ..ids import new_id
from ..store.models import Checkpoint, Run
from . import criu
from .base import CheckpointSupport, Containers
from .checkpoints import CheckpointerBase, test_pause_before_record
from .sockets import wait_until_no_tcp
from .workers import WorkerHandle

log = structlog.get_logger("checkpoints")

EXECUTOR = "docker"  # the `executor` column of its checkpoint rows


# -- the engine's checkpoint endpoints (blocking: called from threads) -----------------------
def _call(client: Any, method: str, path: str, what: str, **kwargs: Any) -> Any:
    api = client.api
    response = api.request(method, f"{api.base_url}/v{api.api_version}{path}", timeout=api.timeout,
                           **kwargs)
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        raise DockerCheckpointError(f"{what} failed (HTTP {response.status_code}): "
                                    f"{message.strip()}")
    return response


def create(client: Any, container: str, name: str) -> float:
    """`docker checkpoint create CONTAINER NAME`: dump it and stop it. Returns the time in ms."""
    started = time.monotonic()
    _call(client, "POST", f"/containers/{container}/checkpoints",
          f"docker checkpoint create {name}", json={"CheckpointID": name, "Exit": True})
    return (time.monotonic() - started) * 1000


def start_from(client: Any, container: str, name: str) -> float:
    """`docker start --checkpoint NAME CONTAINER`: restore it, running. Returns the time in ms."""
    started = time.monotonic()
    _call(client, "POST", f"/containers/{container}/start", f"docker start --checkpoint {name}",
          params={"checkpoint": name})
    return (time.monotonic() - started) * 1000


def listed(client: Any, container: str) -> list[str]:
    """`docker checkpoint ls CONTAINER`: the names of its checkpoints."""
    response = _call(client, "GET", f"/containers/{container}/checkpoints",
                     f"docker checkpoint ls {container}")
    return [str(c.get("Name")) for c in response.json() or []]


def delete(client: Any, container: str, name: str) -> None:
    """`docker checkpoint rm`: a restored checkpoint is never used again."""
    _call(client, "DELETE", f"/containers/{container}/checkpoints/{name}",
          f"docker checkpoint rm {name}")


def decide_capability(setting: str, info: dict[str, Any] | None,
                      criu_found: criu.Capability) -> criu.Capability:
    """Can this engine checkpoint containers? It needs `--experimental` and a working CRIU
    (the engine runs it on this same machine)."""
    if setting == "off":
        return criu.Capability(False, "checkpoints are turned off (checkpoints = \"off\")")
    if info is None:
        return criu.Capability(False, "the Docker engine was not available to ask whether it "
                                      "can checkpoint")
    if not info.get("ExperimentalBuild"):
        return criu.Capability(False, "the Docker engine runs without --experimental, which "
                                      "`docker checkpoint` needs: restart it with `dockerd "
                                      "--experimental` (scripts/setup-docker.sh)")
    if not criu_found.ok:
        return criu.Capability(False, "the Docker engine checkpoints with CRIU, which does not "
                                      f"work here: {criu_found.reason}", criu_found.version)
    return criu.Capability(True, "", criu_found.version)


async def _criu_for_engine(criu_path: str) -> criu.Capability:
    # The engine runs CRIU as root: a daemon that is not root can only see that it is installed.
    if os.geteuid() != 0:
        found = shutil.which(criu_path)
        why = "" if found else (f"CRIU is not installed ({criu_path!r} not found): install "
                                "CRIU >= 4 with `sudo bash scripts/setup-criu.sh "
                                "--yes-upgrade-libc`")
        return criu.Capability(bool(found), why)
    return await criu.check(criu_path)


class DockerCheckpointer(CheckpointerBase):
    """The docker executor's `Checkpoints` (executors/base.py)."""

    def __init__(self, support: CheckpointSupport, containers: Containers) -> None:
        super().__init__(support)
        self.containers = containers
        containers.when_engine_answers(self.check)
        self.capability = decide_capability(self.settings.checkpoints, None,
                                            criu.Capability(False, ""))
        self.checked = False
        self.root = "/var/lib/docker"  # the engine's DockerRootDir: checkpoints live under it

    async def start(self) -> None:
        """Load the active container checkpoints a previous daemon left (their containers are
        stopped, kept by the engine). The capability is decided when the engine first answers."""
        for ck in await self.engine.queries.checkpoints.active():
            if ck.executor == EXECUTOR:
                self.by_worker[ck.worker_id] = ck
        if self.containers.client is None:
            return  # no engine yet: pending rows wait for a daemon that finds one
        for ck in await self.engine.queries.checkpoints.pending():
            if ck.executor == EXECUTOR:
                self.support.settled(ck, await self.settle_pending(ck))

    async def check(self, client: Any) -> None:
        """Decide once, when the engine first answers, whether waiting runs can be checkpointed."""
        if self.checked:
            return
        try:
            info = await asyncio.to_thread(client.info)
        except (DockerException, OSError):  # requests' errors are OSErrors
            return  # asked again when the engine is back
        self.root = str(info.get("DockerRootDir") or self.root)
        criu_found = criu.Capability(False, "") if self.settings.checkpoints == "off" \
            else await _criu_for_engine(self.settings.criu_path)
        self.capability = decide_capability(self.settings.checkpoints, info, criu_found)
        self.checked = True
        if not self.capability.ok:
            log.info("waiting runs in containers will be held, not checkpointed",
                     reason=self.capability.reason)

    def describe(self) -> dict[str, Any]:
        return {"available": self.capability.ok, "reason": self.capability.reason,
                "engine": "docker", "criu_version": self.capability.version,
                "dir": f"{self.root}/containers/<container>/checkpoints",
                "count": len(self.by_worker),
                "bytes": sum(c.size_bytes for c in self.by_worker.values())}

    def _path(self, container_id: str, name: str) -> Path:
        return Path(self.root) / "containers" / container_id / "checkpoints" / name

    # -- freezing ---------------------------------------------------------------------------
    async def _freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                      socket_wait_s: float) -> bool:
        container: Any = getattr(worker, "container", None)
        pid = await asyncio.to_thread(_main_pid, container)
        if not pid or not await wait_until_no_tcp(pid, socket_wait_s):
            await self.engine.checkpoint_refused(
                run_id, "the task container still holds a TCP connection (or is not running), "
                        "which CRIU cannot checkpoint: the run is held")
            return False
        if not await self._still_waits(run_id, attempt):
            return False  # the container just continues
        name = new_id("checkpoint")
        path = self._path(container.id, name)
        ck = Checkpoint(id=name, run_id=run_id, attempt=attempt, worker_id=worker.id, pid=pid,
                        path=str(path), status="", created_at=time.time(), executor=EXECUTOR)
        await self.engine.begin_checkpoint(ck)
        try:
            dump_ms = await asyncio.to_thread(create, self.containers.client, container.id, name)
        except (DockerCheckpointError, DockerException, OSError) as exc:
            await self.engine.undo_checkpoint(ck.id)
            log.warning("container checkpoint failed: holding the run", run=run_id,
                        error=str(exc)[:300])
            await self.engine.checkpoint_refused(run_id,
                                                 f"checkpoint failed, the run is held: {exc}")
            return False
        await test_pause_before_record()
        ck.size_bytes, ck.dump_ms = criu.images_size(path), round(dump_ms, 1)
        if await self.engine.record_checkpoint(ck):
            self.by_worker[worker.id] = ck
            log.info("run's container checkpointed", run=run_id, ms=ck.dump_ms, bytes=ck.size_bytes)
        else:  # the attempt ended during the dump: nothing will restore it
            await asyncio.to_thread(self.containers.discard_container, worker.id)
        return True

    # -- a checkpoint that a killed daemon left pending -----------------------------------------
    async def settle_pending(self, ck: Checkpoint) -> bool:
        """Finish (True) or undo (False) a `docker checkpoint create` that was under way when the
        last daemon died. Finished: the engine lists the checkpoint and the container has stopped
        (the engine stops it only once the checkpoint is written)."""
        client = self.containers.client
        try:
            names = await asyncio.to_thread(listed, client, ck.worker_id)
            container = await asyncio.to_thread(client.containers.get, ck.worker_id)
            running = bool(container.attrs.get("State", {}).get("Running"))
        except (DockerCheckpointError, DockerException, OSError) as exc:
            log.warning("could not settle a pending container checkpoint", checkpoint=ck.id,
                        error=str(exc)[:200])
            names, running = [], True
        if ck.id in names and not running:
            ck.size_bytes = criu.images_size(Path(ck.path))
            if await self.engine.record_checkpoint(ck):
                self.by_worker[ck.worker_id] = ck
                log.info("finished a checkpoint the last daemon left pending", run=ck.run_id,
                         checkpoint=ck.id)
                return True
        await self.engine.undo_checkpoint(ck.id)
        log.info("undid a checkpoint the last daemon left pending", run=ck.run_id, checkpoint=ck.id)
        return False

    # -- restoring --------------------------------------------------------------------------
    async def restore(self, run: Run, ck: Checkpoint) -> WorkerHandle | None:
        self.by_worker.pop(ck.worker_id, None)
        client = self.containers.client
        try:
            restore_ms = await asyncio.to_thread(start_from, client, ck.worker_id, ck.id)
            container = await asyncio.to_thread(client.containers.get, ck.worker_id)
        except (DockerCheckpointError, DockerException, OSError) as exc:
            message = (f"Restoring the run's container from its checkpoint failed ({exc}): the "
                       "run resumes by replay")
            log.warning("container restore failed: resuming by replay", run=run.id,
                        error=str(exc)[:300])
            await asyncio.to_thread(self.containers.discard_container, ck.worker_id)
            await self.engine.checkpoint_unusable(ck.id, message)
            await self.engine.records.resume_by_replay(run.id, run.attempt_count, message)
            return None
        try:  # it runs again: the checkpoint can never be used twice, and its disk is freed now
            await asyncio.to_thread(delete, client, ck.worker_id, ck.id)
        except (DockerCheckpointError, DockerException, OSError) as exc:
            log.warning("could not delete a restored checkpoint", checkpoint=ck.id,
                        error=str(exc)[:200])
        await self.engine.checkpoint_restored(ck.id, restore_ms)
        log.info("run's container restored", run=run.id, ms=round(restore_ms, 1))
        return self.containers.handle_for_restored(run, ck.worker_id, container)

    # -- clean-up ---------------------------------------------------------------------------
    def _discard(self, ck: Checkpoint, why: str) -> None:
        self.support.run_job(self._drop(ck, why))

    async def _drop(self, ck: Checkpoint, why: str) -> None:
        await asyncio.to_thread(self.containers.discard_container, ck.worker_id)
        # retried (a full disk): a row left active would be loaded again by the next daemon
        await self.support.supervisor.retry_until_done(
            f"forgetting checkpoint {ck.id}",
            lambda: self.engine.checkpoint_unusable(ck.id, why, deleted=True))


def _main_pid(container: Any) -> int:
    """The host pid of the container's main process (the runtime), 0 when it is not running."""
    if container is None:
        return 0
    try:
        container.reload()
    except (DockerException, OSError):  # the engine went away (requests' errors are OSErrors)
        return 0
    return int(container.attrs.get("State", {}).get("Pid") or 0)
