"""The completions of a shared process's runs, sent together (docs/worker-protocol.md, "Many
runs per process"): runs that end in the same turn of the event loop — a thousand tokens
completed at once end a thousand runs at once — make one frame on the process's channel (or one
request when it has none), not one each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..errors import ChannelClosed
from ..sdk.worker_client import WorkerClient
from .channel import Channel


class Completions:
    """`send` waits until the daemon committed this completion (one request for all those
    sent in the same loop turn) and returns its result: `{"status"}` or `{"gone": true}`."""

    def __init__(self, client: WorkerClient, worker_id: str, worker_token: str,
                 channel: Callable[[], Channel | None] = lambda: None) -> None:
        self.client, self.worker_id, self.worker_token = client, worker_id, worker_token
        self.channel = channel
        self._pending: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def send(self, assignment: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        item = protocol.completion_item(assignment, body)
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if len(self._pending) == 1:
            task = asyncio.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return await done

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the other runs ending in this turn join the request
        batch, self._pending = self._pending, []
        try:
            results = await self._deliver([item for item, _ in batch])
            if not isinstance(results, list) or len(results) != len(batch):
                raise ValueError(f"the daemon answered {len(batch)} completions with {results!r}")
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result if isinstance(result, dict) else {})

    async def _deliver(self, items: list[dict[str, Any]]) -> Any:
        channel = self.channel()
        if channel is not None:
            try:
                return await channel.complete(items)
            except ChannelClosed:
                pass  # sent again over HTTP: one the daemon committed already comes back `gone`
        answer = await self.client.request(
            "POST", f"/engine/v1/workers/{self.worker_id}/complete", token=self.worker_token,
            body=protocol.completions_body(items))
        return answer.get("results") if isinstance(answer, dict) else None
