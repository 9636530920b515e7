"""A watch (`runs logs --follow`, `trigger --wait`) whose daemon goes away during one of the
reads it makes between two events of its stream: the watch goes on, as it does when the
stream itself is cut. It used to end with "The daemon failed on this request (500: Lost the
connection ...)" when the kill landed during that read instead of between two reads (CI, stop
27). Against a real daemon killed with SIGKILL and started again, and a real socket that
resets the connection."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rich.console import Console

from trigger_local.cli.common import explain
from trigger_local.cli.follow import LOST_READ_TRIES, RunWatch, between_events, follow_logs
from trigger_local.errors import DaemonConnectionLostError
from trigger_local.sdk.client import SyncApiClient
from trigger_local.sdk.routes import Call

from .conftest import DaemonProcess, wait_for

Json = dict[str, Any]


class KilledAtRead(SyncApiClient):
    """A client whose first read of the run kills the daemon just before it goes out."""

    def __init__(self, d: DaemonProcess, run_id: str) -> None:
        super().__init__(d.url, d.key)
        self.d, self.run_path = d, f"/api/v3/runs/{run_id}"
        self.killed = threading.Event()

    def send(self, call: Call[Any]) -> Any:
        if call.path == self.run_path and not self.killed.is_set():
            self.d.kill9()
            self.killed.set()
        return super().send(call)


def _follow(api: SyncApiClient, run_id: str) -> Json:
    return follow_logs(api, run_id)


def _watch(api: SyncApiClient, run_id: str) -> Json:
    return RunWatch(api, run_id, lambda: Console(quiet=True)).run()


def _waiting_run(d: DaemonProcess) -> tuple[str, str]:
    """A run that waits for a token of its own, and that token."""
    run_id = d.trigger("token-waiter", {})
    d.wait_status(run_id, "WAITING")
    wait_for(lambda: d.run(run_id).get("metadata", {}).get("token"), 20, what="the token")
    return run_id, str(d.run(run_id)["metadata"]["token"])


def _watching(watch: Callable[[SyncApiClient, str], Json], api: SyncApiClient,
              run_id: str) -> tuple[threading.Thread, list[Json | BaseException]]:
    """`watch` of the run in a thread of its own; what it returned or raised, once it ends."""
    ended: list[Json | BaseException] = []

    def watching() -> None:
        try:
            ended.append(watch(api, run_id))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            ended.append(exc)

    thread = threading.Thread(target=watching, daemon=True)
    thread.start()
    return thread, ended


@pytest.mark.parametrize("watch", [_follow, _watch], ids=["follow", "trigger-wait"])
def test_a_watch_goes_on_when_the_daemon_dies_during_its_read(
        ready: DaemonProcess, watch: Callable[[SyncApiClient, str], Json]) -> None:
    run_id, token = _waiting_run(ready)
    api = KilledAtRead(ready, run_id)
    thread, ended = _watching(watch, api, run_id)
    assert api.killed.wait(30), "the watch never read the run"
    ready.start()  # the same home and port
    r = ready.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
    assert r.status_code == 200, r.text
    thread.join(60)
    assert ended and isinstance(ended[0], dict), ended
    assert ended[0]["status"] == "COMPLETED", ended[0]
    api.close()


@pytest.fixture
def resetting() -> Iterator[tuple[str, list[int]]]:
    """An address whose every connection is reset once its request is read: what a daemon
    killed while it handled the request looks like to the client."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    server.close()


def test_a_connection_lost_mid_request_is_its_own_error(resetting: tuple[str, list[int]]) -> None:
    url, accepted = resetting
    api = SyncApiClient(url, "tr_dev_x")
    with pytest.raises(DaemonConnectionLostError) as caught:
        api.retrieve_run("run_x")
    said = explain(caught.value)
    assert said.startswith(f"Lost the connection to the daemon at {url}"), said
    assert "500" not in said and "report it" not in said, said
    accepted.clear()
    with pytest.raises(DaemonConnectionLostError):  # an address that answers: it is up
        between_events(lambda: api.retrieve_run("run_x"))
    assert len(accepted) == LOST_READ_TRIES, "a lost read is tried again at once"
    api.close()


class CutWhileUp(SyncApiClient):
    """A client whose reads of the run, once the run is final, go to an address that resets
    them (`resetting`), `cuts` times: a read that fails while the daemon stays up, its event
    stream with it, and sends no further event of the run."""

    def __init__(self, d: DaemonProcess, run_id: str, cut_url: str, cuts: int) -> None:
        super().__init__(d.url, d.key)
        self.d, self.run_id, self.cuts = d, run_id, cuts
        self.cutter = SyncApiClient(cut_url, d.key)

    def send(self, call: Call[Any]) -> Any:
        if call.path == f"/api/v3/runs/{self.run_id}" and self.cuts \
                and self.d.run(self.run_id)["status"] == "COMPLETED":
            self.cuts -= 1
            return self.cutter.send(call)
        return super().send(call)


@pytest.mark.parametrize("watch", [_follow, _watch], ids=["follow", "trigger-wait"])
def test_a_watch_whose_final_read_is_cut_twice_with_the_daemon_up_ends(
        ready: DaemonProcess, resetting: tuple[str, list[int]],
        watch: Callable[[SyncApiClient, str], Json]) -> None:
    """Its stream sends nothing more: a read given up on would wait for ever (it did)."""
    run_id, token = _waiting_run(ready)
    api = CutWhileUp(ready, run_id, resetting[0], cuts=2)
    thread, ended = _watching(watch, api, run_id)
    r = ready.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
    assert r.status_code == 200, r.text
    thread.join(30)
    assert ended, "the watch still waits, 30 s after its run ended"
    assert isinstance(ended[0], dict) and ended[0]["status"] == "COMPLETED", ended[0]
    assert api.cuts == 0 and len(resetting[1]) == 2
    api.close()
    api.cutter.close()
