"""What a task process loads when it starts (issue #13): a shared process is started again after
each `warm_runs_per_process` runs, and its imports are CPU-bound on the daemon's machine. httpx
(with what it pulls in: httpcore, anyio, and click, rich and pygments for its command line when
they are installed) is loaded only by a call that uses it: a management call from a task, the
event stream, `TRIGGER_LOCAL_WORKER_HTTP=httpx`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from trigger_local.sdk.worker_client import CONNECTION_ERRORS, HttpxTransport


def _loaded_after(code: str) -> dict[str, bool]:
    probe = (f"import sys\n{code}\n"
             "import json\nprint(json.dumps({m: m in sys.modules for m in "
             "('httpx', 'httpcore', 'anyio')}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_task_process_starts_without_httpx() -> None:
    # what `python -m trigger_local.runtime work` imports before its first poll, plus its channel
    # and the SDK a task module imports
    loaded = _loaded_after("import trigger_local.runtime.__main__, trigger_local.runtime.channel\n"
                           "from trigger_local import task, wait, runs, queues, logger, metadata")
    assert loaded == {"httpx": False, "httpcore": False, "anyio": False}


def test_a_management_call_loads_httpx_when_it_is_made() -> None:
    loaded = _loaded_after("from trigger_local.sdk.client import SyncApiClient\n"
                           "SyncApiClient('http://127.0.0.1:1', 'tr_dev_x')._client()")
    assert loaded["httpx"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: nothing listens there


async def test_the_httpx_transport_raises_a_refused_connection_as_a_connection_error() -> None:
    """The worker client retries CONNECTION_ERRORS, which no longer name httpx's own errors:
    the httpx transport raises them as ConnectionError."""
    transport = HttpxTransport(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(CONNECTION_ERRORS) as caught:
            await transport.send("GET", "/engine/v1/workers/w/next", {}, None, 5.0)
        assert isinstance(caught.value, ConnectionError)
        assert "ConnectError" in str(caught.value)
    finally:
        await transport.aclose()
