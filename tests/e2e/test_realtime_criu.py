"""A run's stream across a CRIU checkpoint: the chunks written before the wait are stored
before the process is dumped, a reader that follows the run across the checkpoint gets every
chunk once and in order, and the restored process writes on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from trigger_local import streams
from trigger_local.sdk.client import configure

from .conftest import wait_for, write_project
from .criu_support import ck_daemon, complete_token, create_token, require_criu, wait_checkpointed

TASKS = '''
import os
from trigger_local import streams, task, wait

async def numbers(first, last):
    for n in range(first, last):
        yield n

@task(id="ck-stream", isolated=True)  # checkpointed: a process of its own
async def ck_stream(payload, ctx):
    before = os.getpid()
    await streams.pipe("nums", numbers(0, 50))
    await wait.for_token(payload["token"])
    await streams.pipe("nums", numbers(50, 100))
    return {"before": before, "after": os.getpid()}
'''


def test_a_stream_survives_a_checkpoint_of_its_run(tmp_path: Path) -> None:
    require_criu()
    d = ck_daemon(tmp_path).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        configure(base_url=d.url, secret_key=d.key)
        token = create_token(d)
        run_id = d.trigger("ck-stream", {"token": token})
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.extend(streams.read_sync(run_id, "nums")),
                                  daemon=True)
        reader.start()
        wait_checkpointed(d, run_id)
        page = d.api("GET", f"/api/v1/local/runs/{run_id}/streams/nums").json()
        assert [c["value"] for c in page["chunks"]] == list(range(50))
        wait_for(lambda: len(got) == 50, 20, what="the reader to have the first 50 chunks")
        complete_token(d, token, {})
        run = d.wait_status(run_id, "COMPLETED")
        reader.join(30)
        assert not reader.is_alive()
        assert got == list(range(100))
        assert run["output"]["before"] == run["output"]["after"]  # the same process, restored
    finally:
        configure()
        d.close()
