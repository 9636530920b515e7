"""Tasks and helpers for the replay tests (docs/durability.md): side effects are counted in
files under the payload's `dir`, so a test sees how often a step really ran."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from .conftest import DaemonProcess, wait_for, write_project

REPLAY_TASKS = '''
import time
from pathlib import Path
from trigger_local import task, wait, step, tasks, metadata, Retry

def bump(payload, name):
    path = Path(payload["dir"]) / name
    with path.open("a") as f:
        f.write("x")
    return path.read_text().count("x")

@task(id="rp-token", retry=Retry(max_attempts=1), isolated=True)  # checkpointed
async def rp_token(payload, ctx):
    n = await step.run("side-effect", bump, payload, "effect")
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"effect": n, "data": result.output, "attempt": ctx.attempt.number}

@task(id="rp-sleep", retry=Retry(max_attempts=1))
async def rp_sleep(payload, ctx):
    await step.run("effect", bump, payload, "effect")
    await wait.for_(seconds=payload["seconds"])
    return {"woke": time.time()}

@task(id="rp-child")
async def rp_child(payload, ctx):
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"child": result.output}

@task(id="rp-parent", retry=Retry(max_attempts=1))
async def rp_parent(payload, ctx):
    await step.run("effect", bump, payload, "effect")
    result = await tasks.trigger_and_wait("rp-child", payload)
    return {"child_id": result.id, "child": result.output}

@task(id="rp-napper")
async def rp_napper(payload, ctx):
    await wait.for_(seconds=payload["seconds"])
    return {"item": payload["item"]}

@task(id="rp-batch", retry=Retry(max_attempts=1))
async def rp_batch(payload, ctx):
    await step.run("effect", bump, payload, "effect")
    results = await tasks.batch_trigger_and_wait(
        "rp-napper", [{"item": i, "seconds": payload["seconds"]} for i in range(2)])
    return {"items": [r.output["item"] for r in results]}

@task(id="rp-fire", retry=Retry(max_attempts=1))
async def rp_fire(payload, ctx):
    handle = await tasks.trigger("rp-napper", {"item": 0, "seconds": 0})
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    await wait.for_token(token)
    return {"child_id": handle.id}

@task(id="rp-retry", retry=Retry(max_attempts=3, min_timeout_s=0.1, max_timeout_s=0.2))
async def rp_retry(payload, ctx):
    a = await step.run("a", bump, payload, "a")
    def flaky():
        if bump(payload, "b") < 2:
            raise RuntimeError("step b fails the first time")
        return "b-ok"
    b = await step.run("b", flaky)
    return {"a": a, "b": b, "attempt": ctx.attempt.number}

@task(id="rp-step-retry", retry=Retry(max_attempts=1))
async def rp_step_retry(payload, ctx):
    def flaky():
        if bump(payload, "s") < 3:
            raise RuntimeError("not yet")
        return "s-ok"
    return await step.run("s", flaky, retry=Retry(max_attempts=3, min_timeout_s=0.01,
                                                  max_timeout_s=0.02))

@task(id="rp-checkpoint", retry=Retry(max_attempts=1))
async def rp_checkpoint(payload, ctx):
    seen = ctx.last_checkpoint
    if seen is None:
        size = bump(payload, "download")
        await ctx.checkpoint("downloaded", {"size": size})
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    await wait.for_token(token)
    return {"seen": seen, "last": ctx.last_checkpoint,
            "downloads": bump(payload, "download") - 1}

@task(id="rp-large", retry=Retry(max_attempts=1))
async def rp_large(payload, ctx):
    def big():
        bump(payload, "effect")
        return "y" * 300_000
    data = await step.run("big", big)
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    await wait.for_token(token)
    return {"length": len(data), "effect": bump(payload, "effect") - 1}

@task(id="rp-hundred", retry=Retry(max_attempts=2, min_timeout_s=0.1, max_timeout_s=0.1))
async def rp_hundred(payload, ctx):
    start = time.perf_counter()
    for i in range(100):
        await step.run(f"s{i}", lambda i=i: {"i": i})
    took = time.perf_counter() - start
    if ctx.attempt.number == 1:
        raise RuntimeError("fail once, so that the next attempt replays 100 steps")
    return {"replay_ms": took * 1000}
'''

#: the version of rp-token after a code change: a step between the token and its wait
REORDERED = REPLAY_TASKS.replace(
    '''    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"effect": n''', '''    metadata.set("token", token.id)
    await step.run("x", bump, payload, "x")
    result = await wait.for_token(token)
    return {"effect": n''')


def replay_daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    """A started daemon (checkpoints off unless `env` says otherwise) with REPLAY_TASKS."""
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off", **env}).start()
    try:
        d.register(write_project(tmp_path / "project", REPLAY_TASKS))
    except BaseException:
        d.close()  # the fixture never yields it: stop it here
        raise
    return d


def worker_pids(home: Path) -> list[int]:
    marker = f"TRIGGER_LOCAL_HOME={home}".encode()
    pids = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            environ = (pid_dir / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and any(e.startswith(b"TRIGGER_LOCAL_WORKER_ID=") for e in environ):
            pids.append(int(pid_dir.name))
    return pids


def reboot(d: DaemonProcess, *, delete: Path | None = None) -> None:
    """The reboot simulation: kill -9 the daemon and every task process of its home (and delete
    `delete`, its checkpoint images), then start the daemon again."""
    d.kill9()
    for pid in worker_pids(d.home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not worker_pids(d.home), 10, what="task processes to die")
    if delete is not None:
        import shutil
        shutil.rmtree(delete, ignore_errors=True)
    d.start()


def metadata_of(d: DaemonProcess, run_id: str, key: str) -> Any:
    return wait_for(lambda: (d.run(run_id).get("metadata") or {}).get(key), 30,
                    what=f"{run_id} metadata {key}")


def count(effects: Path, name: str) -> int:
    path = effects / name
    return path.read_text().count("x") if path.exists() else 0


def complete(d: DaemonProcess, token: str, data: Any) -> None:
    r = d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": data})
    assert r.status_code == 200, r.text


def records(d: DaemonProcess, run_id: str) -> list[dict[str, Any]]:
    r = d.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return list(r.json().get("records") or [])
