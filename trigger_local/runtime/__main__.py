"""`python -m trigger_local.runtime work | index --out FILE` (docs/worker-protocol.md).

Exit codes: 0 done (indexed / retired), 1 a task module failed to import, 2 the daemon
refused the worker, 3 the daemon stayed unreachable past the orphan timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from ..config import CANCEL_SIGNAL, DAEMON_INFO_ENV
from ..errors import ImportFailure
from ..sdk import client as sdk_client
from ..sdk import registry
from ..sdk.worker_client import HttpxTransport, Transport, WorkerClient, daemon_url_in
from . import stdio
from .http11 import StreamTransport
from .indexer import build_manifest, load_project
from .lifecycle import cancel_all
from .worker import Worker, WorkerEnv


def _write(path: str, data: dict[str, object]) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(target)  # the daemon never reads a half-written manifest


def index(out: str) -> int:
    env = WorkerEnv.from_env()
    registry.clear()
    try:
        modules = load_project(Path(env.project_dir), env.task_dirs)
        manifest = build_manifest(Path(env.project_dir), modules)
    except ImportFailure as failure:
        _write(out, {"error": failure.to_dict()})
        print(failure.traceback or failure.message, file=sys.stderr)
        return 1
    _write(out, manifest)
    return 0


def work() -> int:
    env = WorkerEnv.from_env()
    only = os.environ.get("TRIGGER_LOCAL_TASK_FILES")
    try:
        load_project(Path(env.project_dir), env.task_dirs, json.loads(only) if only else None)
    except ImportFailure as failure:
        print(failure.traceback or failure.message, file=sys.stderr)
        return 1
    stdio.install()
    return asyncio.run(_work(env))


def _transport_for(url: str) -> Transport:
    if url.startswith("http://") and os.environ.get("TRIGGER_LOCAL_WORKER_HTTP") != "httpx":
        return StreamTransport(url)
    return HttpxTransport(url)


def _moved_to(url: str) -> Transport:
    """The transport to the daemon's new url; the task's own SDK calls (TRIGGER_API_URL) go
    there too from now on."""
    os.environ["TRIGGER_API_URL"] = os.environ["TRIGGER_LOCAL_DAEMON_URL"] = url
    sdk_client.forget_clients()
    return _transport_for(url)


async def _work(env: WorkerEnv) -> int:
    # the client is created inside the loop that will use it
    info = os.environ.get(DAEMON_INFO_ENV)
    client = WorkerClient(env.daemon_url, transport=_transport_for(env.daemon_url),
                          find_daemon=(lambda: daemon_url_in(Path(info))) if info else None,
                          transport_for=_moved_to)
    worker = Worker(client, env.worker_id, env.worker_token)
    loop = asyncio.get_running_loop()
    cancels: set[asyncio.Task[None]] = set()  # a reference, or the task may be collected
    loop.add_signal_handler(CANCEL_SIGNAL, lambda: cancels.add(loop.create_task(_canceled())))
    return await worker.run()


async def _canceled() -> None:
    # the run is already CANCELED on the daemon: nothing is reported, the process just ends
    try:
        await cancel_all()
    finally:
        sys.stdout.flush()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trigger_local.runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("work", help="run attempts for the daemon until retired")
    idx = sub.add_parser("index", help="import the task modules and write their manifest")
    idx.add_argument("--out", required=True, help="where to write the manifest JSON")
    args = parser.parse_args(argv)
    _user_umask()
    return index(args.out) if args.command == "index" else work()


def _user_umask() -> None:
    """The daemon runs with umask 077 (its home is private); task code gets the user's umask
    back (TRIGGER_LOCAL_UMASK, octal), so files it writes elsewhere are as the user expects."""
    raw = os.environ.get("TRIGGER_LOCAL_UMASK")
    if raw:
        try:
            os.umask(int(raw, 8) & 0o777)
        except ValueError:
            pass


if __name__ == "__main__":
    sys.exit(main())
