"""The task process of scripts/bench_cycle_floor.py: `python scripts/bench_cycle_floor_task.py
ws|stream PORT` connects to the lean daemon there (a WebSocket of the `websockets` library, or a
plain asyncio stream of newline-separated JSON), runs each assignment in a task of its own that
awaits a no-op coroutine, and sends the completions that are ready together in one message,
until the daemon says stop. The event loop is uvloop's when it is installed, as the daemon's."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # the daemon's loop when it is installed, asyncio's otherwise
        return asyncio.new_event_loop()


async def child(transport: str, port: int) -> None:
    """The task process: each assignment a task awaiting a no-op; ready completions coalesced."""
    loop = asyncio.get_running_loop()
    ready: list[dict[str, Any]] = []
    send: Callable[[str], Any]
    recv: Callable[[], Awaitable[str | bytes]]
    if transport == "ws":
        from websockets.asyncio.client import connect
        ws = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        recv = ws.recv

        def send(text: str) -> Any:
            return loop.create_task(ws.send(text))
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        recv = reader.readline

        def send(text: str) -> Any:
            writer.write(text.encode() + b"\n")

    def flush() -> None:
        send(json.dumps({"completions": ready}))
        ready.clear()

    async def noop(payload: Any) -> Any:
        return None

    async def run(a: dict[str, Any]) -> None:
        out = await noop(json.loads(a["payload"]))
        ready.append({"id": a["id"], "attempt": a["attempt"], "ok": True,
                      "output": json.dumps(out)})
        if len(ready) == 1:
            loop.call_soon(flush)

    while True:
        msg = json.loads(await recv())
        if msg.get("stop"):
            break
        for a in msg["assignments"]:
            loop.create_task(run(a))
    if transport == "ws":
        await ws.close()


if __name__ == "__main__":
    main_loop = new_loop()
    main_loop.run_until_complete(child(sys.argv[1], int(sys.argv[2])))
    main_loop.close()
