"""The management client (and the CLI through it) against a real HTTP server on a free port:
daemon discovery, auth header, error mapping, answer normalisation.

The server is a small Starlette stub speaking the daemon's shapes, not the daemon: the
lead's end-to-end tests cover the real one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from trigger_local.cli.main import app as cli
from trigger_local.errors import (
    AuthenticationError,
    DaemonNotRunningError,
    NotFoundError,
    TaskNotFoundError,
    ValidationError,
)
from trigger_local.sdk import client as client_module
from trigger_local.sdk.client import ApiClient, SyncApiClient, get_client, get_sync_client
from trigger_local.sdk.management import runs

KEY = "tr_dev_testkey"
RUNS = {
    "run_ok": {"id": "run_ok", "status": "COMPLETED", "taskIdentifier": "hello",
               "output": {"message": "Hi"}, "tags": [], "isCompleted": True, "durationMs": 12},
    "run_bad": {"id": "run_bad", "status": "FAILED", "taskIdentifier": "hello", "tags": [],
                "error": {"name": "RuntimeError", "message": "boom", "stackTrace": "Traceback..."}},
}


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        entry = {"method": request.method, "path": request.scope["raw_path"].decode(),
                 "query": dict(request.query_params), "headers": dict(request.headers),
                 "body": json.loads(raw) if raw else None}
        self.requests.append(entry)
        return entry

    async def handle(self, request: Request) -> Response:
        entry = await self.record(request)
        if request.url.path == "/healthz":
            return _json({"ok": True})
        if entry["headers"].get("authorization") != f"Bearer {KEY}":
            return _json({"error": "Invalid API Key", "code": "unauthorized"}, 401)
        return self.route(entry)

    def route(self, entry: dict[str, Any]) -> Response:
        path = entry["path"]
        if path == "/api/v1/tasks/nope/trigger":
            return _json({"error": "Task 'nope' not found.", "code": "task_not_found",
                          "known_tasks": ["hello", "slow"]}, 404)
        if path.endswith("/trigger"):
            return _json({"id": "run_bad" if "fail" in path else "run_ok", "isCached": False})
        if path == "/api/v1/tasks/batch":
            return _json({"id": "batch_1", "isCached": False,
                          "runs": [{"id": "run_a"}, {"id": "run_b"}]})
        if path.startswith("/api/v3/runs/"):
            run = RUNS.get(path.rsplit("/", 1)[1])
            return _json(run) if run else _json({"error": "Run not found", "code": "not_found"},
                                                404)
        if path == "/api/v1/runs":
            return _json({"data": list(RUNS.values()), "pagination": {}})
        if path.endswith("/reschedule"):
            return _json({"error": "Invalid delay 'soon'", "code": "invalid"}, 422)
        if path.startswith("/api/v1/queues/"):
            body = entry["body"]
            if entry["query"].get("type") == "task" or body and body["type"] == "task":
                return _json({"error": "queue-not-found"}, 404)
            return _json({"id": "queue_1", "name": "my/queue", "type": "custom", "running": 0,
                          "queued": 2, "paused": False, "concurrencyLimit": None})
        if path == "/api/v1/local/stream":  # one `hello`, then the stream ends: clients reconnect
            return Response(b"id: 0\nevent: hello\ndata: {}\n\n", media_type="text/event-stream")
        if path.startswith("/api/v1/local/events") or path.endswith("/logs"):
            return _json({"data": [], "next": 0})
        return _json({"error": "Method not allowed"}, 405)


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    with _serving() as served:
        yield served


@contextlib.contextmanager
def _serving() -> Iterator[tuple[Stub, str]]:
    stub = Stub()
    routes = [Route("/{path:path}", stub.handle, methods=["GET", "POST", "PUT", "DELETE"])]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # listening before the thread starts: requests queue instead of failing
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield stub, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(home))
    monkeypatch.delenv("TRIGGER_API_URL", raising=False)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    client_module.configure()
    yield home
    client_module.configure()


def write_daemon_home(home: Path, url: str, key: str = KEY) -> None:
    (home / "daemon.json").write_text(json.dumps({"url": url, "pid": 1, "version": "0.1.0",
                                                  "executor": "process", "home": str(home)}))
    (home / "secret_key").write_text(key + "\n")


@pytest.fixture
def api(stub: tuple[Stub, str]) -> Iterator[SyncApiClient]:
    client = SyncApiClient(stub[1], KEY)
    yield client
    client.close()


def test_discovers_the_daemon_and_its_key_from_the_home(stub: tuple[Stub, str], home: Path) -> None:
    server, url = stub
    write_daemon_home(home, url)
    run = get_sync_client().retrieve_run("run_ok")
    assert run["status"] == "COMPLETED"
    sent = server.requests[-1]
    assert sent["path"] == "/api/v3/runs/run_ok"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["headers"]["x-trigger-api-version"] == "2025-07-16"


def test_environment_wins_over_the_home(stub: tuple[Stub, str], home: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = stub
    write_daemon_home(home, "http://127.0.0.1:1", key="tr_dev_wrong")
    monkeypatch.setenv("TRIGGER_API_URL", url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", KEY)
    api = SyncApiClient()
    assert api.healthz() == {"ok": True}
    assert api.retrieve_run("run_ok")["id"] == "run_ok"
    api.close()


def test_follow_daemon_moves_only_an_address_found_in_the_home(
        stub: tuple[Stub, str], home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`follow_daemon` (after an event stream lost its daemon): the home's daemon.json naming
    another address moves the client there, connection and all; an address given (base_url,
    TRIGGER_API_URL) stays, and so does the last one while no daemon.json names one."""
    _, url = stub
    write_daemon_home(home, "http://127.0.0.1:1")
    api, fixed = SyncApiClient(), SyncApiClient("http://127.0.0.1:1", KEY)
    with pytest.raises(DaemonNotRunningError):
        api.healthz()
    write_daemon_home(home, url)  # the daemon came back on another port
    api.follow_daemon()
    fixed.follow_daemon()
    assert api.healthz() == {"ok": True} and api.endpoint.base_url == url
    assert fixed.endpoint.base_url == "http://127.0.0.1:1"
    (home / "daemon.json").unlink()  # stopped: the last address is the best guess
    api.follow_daemon()
    assert api.endpoint.base_url == url
    monkeypatch.setenv("TRIGGER_API_URL", url)
    write_daemon_home(home, "http://127.0.0.1:1")
    api.follow_daemon()
    assert api.endpoint.base_url == url
    api.close()
    fixed.close()


async def test_a_call_made_while_the_async_client_follows_the_daemon_goes_to_it(
        stub: tuple[Stub, str], home: Path) -> None:
    """The async client's `follow_daemon` (the dashboard's event stream, after it lost its
    daemon) moves it while the dashboard's other calls go on: one made as it moves reaches the
    daemon at the new address, not the old client it was closing ("Cannot send a request, as
    the client has been closed.", a RuntimeError the dashboard does not expect)."""
    server, url = stub
    with _serving() as (_, old_url):
        write_daemon_home(home, old_url)
        api = ApiClient()
        assert await api.healthz() == {"ok": True}  # a kept-alive connection to close
        write_daemon_home(home, url)  # the daemon came back on another port
        moved, answer = await asyncio.gather(api.follow_daemon(), api.healthz(),
                                             return_exceptions=True)
    assert moved is None and answer == {"ok": True}, answer
    assert [r["path"] for r in server.requests] == ["/healthz"]  # it went to the new one
    assert api.endpoint.base_url == url
    await api.aclose()


def test_wrong_key_is_an_authentication_error(stub: tuple[Stub, str]) -> None:
    api = SyncApiClient(stub[1], "tr_dev_wrong")
    with pytest.raises(AuthenticationError, match="Invalid API Key"):
        api.list_runs()
    api.close()


def test_errors_map_back_to_their_classes(api: SyncApiClient) -> None:
    with pytest.raises(TaskNotFoundError) as caught:
        api.trigger("nope", None)
    assert caught.value.details["known_tasks"] == ["hello", "slow"]
    with pytest.raises(NotFoundError, match="Run not found"):
        api.retrieve_run("run_missing")
    with pytest.raises(ValidationError, match="Invalid delay"):
        api.reschedule_run("run_ok", "soon")


def test_connection_refused_is_daemon_not_running() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    api = SyncApiClient(url, KEY)
    with pytest.raises(DaemonNotRunningError, match="trigger-local up"):
        api.status()
    api.close()


def test_trigger_body_and_batch_answer(stub: tuple[Stub, str], api: SyncApiClient) -> None:
    server = stub[0]
    api.trigger("hello", '{"a":1}', "application/json", {"queue": "q", "tags": "t",
                                                         "idempotency_key": "k"})
    body, headers = server.requests[-1]["body"], server.requests[-1]["headers"]
    assert body["payload"] == '{"a":1}'
    assert body["options"]["queue"] == {"name": "q"} and body["options"]["tags"] == ["t"]
    assert len(body["options"]["idempotencyKey"]) == 64
    assert body["options"]["idempotencyKeyOptions"]["key"] == "k"
    assert "x-trigger-request-idempotency-key" in headers
    batch = api.batch_trigger([{"task": "hello", "payload": "1"},
                               {"task": "hello", "payload": "2"}])
    assert batch == {"batchId": "batch_1", "runs": ["run_a", "run_b"]}


def test_queue_lookup_falls_back_to_custom_and_encodes_slashes(stub: tuple[Stub, str],
                                                               api: SyncApiClient) -> None:
    server = stub[0]
    queue = api.retrieve_queue("my/queue")
    assert queue["type"] == "custom"
    assert [r["query"].get("type") for r in server.requests[-2:]] == ["task", "custom"]
    assert server.requests[-1]["path"] == "/api/v1/queues/my%252Fqueue"


async def test_async_client_and_runs_namespace(stub: tuple[Stub, str]) -> None:
    server, url = stub
    client_module.configure(url, KEY)
    api = ApiClient(url, KEY)
    page = await api.list_runs(status=["COMPLETED", "FAILED"], task="hello", limit=5)
    assert len(page["data"]) == 2
    assert server.requests[-1]["query"] == {"filter[status]": "COMPLETED,FAILED",
                                            "filter[taskIdentifier]": "hello", "page[size]": "5"}
    assert (await runs.poll("run_ok", interval_s=0.01, timeout_s=5))["status"] == "COMPLETED"
    assert runs.retrieve_sync("run_bad")["status"] == "FAILED"
    await api.aclose()
    await get_client().aclose()


runner = CliRunner()


def test_cli_unknown_task_lists_the_known_ones(stub: tuple[Stub, str], home: Path) -> None:
    write_daemon_home(home, stub[1])
    result = runner.invoke(cli, ["trigger", "nope", "--payload", "{}"])
    assert result.exit_code == 1
    assert "hello, slow" in result.stderr and "trigger-local dev" in result.stderr


def test_cli_trigger_wait_prints_output_and_fails_on_failed_runs(
        stub: tuple[Stub, str], home: Path) -> None:
    write_daemon_home(home, stub[1])
    ok = runner.invoke(cli, ["trigger", "hello", "--payload", '{"name": "Ada"}', "--wait"])
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout) == {"message": "Hi"}
    failed = runner.invoke(cli, ["trigger", "fail", "--wait"])
    assert failed.exit_code == 1
    assert "boom" in failed.stderr and "runs show run_bad" in failed.stderr


@pytest.mark.parametrize("args", [["runs", "ls", "--json"], ["runs", "show", "run_ok", "--json"],
                                  ["queues", "show", "my/queue", "--json"],
                                  ["trigger", "hello", "--json"],
                                  ["trigger", "hello", "--wait", "--json"]])
def test_cli_json_is_one_document_on_stdout(stub: tuple[Stub, str], home: Path,
                                            args: list[str]) -> None:
    write_daemon_home(home, stub[1])
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def test_cli_tables_do_not_cut_ids(stub: tuple[Stub, str], home: Path) -> None:
    write_daemon_home(home, stub[1])
    result = runner.invoke(cli, ["runs", "ls"])
    assert result.exit_code == 0
    assert "run_ok" in result.stdout and "run_bad" in result.stdout and "FAILED" in result.stdout
