"""SIGTERM: the daemon stops in order and on time. An idle one is gone within a second, with no
traceback in its log; a busy one within `shutdown_grace_s` plus a second, even with long-polls
and event streams open; and no request made meanwhile gets a 500 (a refused connection or a 503
is what a client sees once the server has stopped accepting)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import DaemonProcess, wait_for, write_project


def _daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home), **env}).start()
    d.register(write_project(tmp_path / "project"))
    return d


class Listeners:
    """What a dashboard and a waiting client hold open: an SSE stream and an events long-poll,
    each in a thread, reconnecting until told to stop."""

    def __init__(self, d: DaemonProcess) -> None:
        self.d = d
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._stream, daemon=True),
                         threading.Thread(target=self._long_poll, daemon=True)]

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.d.url, headers={"Authorization": f"Bearer {self.d.key}"},
                            timeout=httpx.Timeout(90, connect=2))

    def _stream(self) -> None:
        while not self._stop.is_set():
            try:
                with self._client() as http, http.stream("GET", "/api/v1/local/stream") as r:
                    for _ in r.iter_lines():
                        self.connected.set()
            except httpx.HTTPError:
                time.sleep(0.05)

    def _long_poll(self) -> None:
        while not self._stop.is_set():
            try:
                with self._client() as http:
                    http.get("/api/v1/local/events", params={"after": 10**12, "wait_s": 60})
            except httpx.HTTPError:
                time.sleep(0.05)

    def __enter__(self) -> Listeners:
        for t in self._threads:
            t.start()
        self.connected.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _sigterm_and_time(d: DaemonProcess) -> tuple[int, float]:
    assert d.proc is not None
    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    code = d.proc.wait(60)
    return code, time.monotonic() - started


def _started(d: DaemonProcess, run_id: str) -> bool:
    return bool(d.api("GET", f"/api/v1/runs/{run_id}/logs").json()["data"])


def test_idle_daemon_stops_within_a_second_without_tracebacks(tmp_path: Path) -> None:
    d = _daemon(tmp_path)
    try:
        # a warm process now long-polls for its next run (the poll rides on its completion)
        assert d.wait_status(d.trigger("hello", {"name": "idle"}))["status"] == "COMPLETED"
        with Listeners(d):
            code, took = _sigterm_and_time(d)
        assert code == 0
        assert took < 1.0, f"an idle daemon took {took:.2f}s to stop"
        log = d.log_text()
        assert "daemon stopped" in log
        assert "CancelledError" not in log and "Traceback" not in log, log[-3000:]
    finally:
        d.close()


def test_busy_daemon_exits_within_the_grace_plus_one_second(tmp_path: Path) -> None:
    grace_s = 2.0
    d = _daemon(tmp_path, TRIGGER_LOCAL_SHUTDOWN_GRACE_S=str(grace_s))
    try:
        ids = [d.trigger("sleeper", {"seconds": 30}) for _ in range(2)]
        for run_id in ids:  # running longer than the grace: they will be interrupted
            wait_for(lambda run_id=run_id: _started(d, run_id), 30, what="the sleepers to start")
        with Listeners(d):
            code, took = _sigterm_and_time(d)
        assert code == 0
        assert grace_s - 0.2 <= took < grace_s + 1.0, (f"a busy daemon took {took:.2f}s with a "
                                                       f"{grace_s}s grace")
        assert "CancelledError" not in d.log_text()
        d.start()  # the interrupted runs are queued again, their attempt not counted
        for run_id in ids:
            trace = d.api("GET", f"/api/v1/runs/{run_id}/trace").json()
            assert trace["attempts"][0]["rawStatus"] == "INTERRUPTED", trace["attempts"]
            d.api("POST", f"/api/v2/runs/{run_id}/cancel")
    finally:
        d.close()


class Hammer:
    """Threads that keep sending requests (triggers, reads) and note every outcome."""

    PATHS = (("POST", "/api/v1/tasks/hello/trigger"), ("GET", "/api/v1/runs"),
             ("GET", "/api/v1/local/status"), ("GET", "/api/v3/runs/{run}"))

    def __init__(self, d: DaemonProcess, run_id: str) -> None:
        self.d, self.run_id = d, run_id
        self.outcomes: list[tuple[str, int | str, Any]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(m, p), daemon=True)
                         for m, p in self.PATHS]

    def _run(self, method: str, path: str) -> None:
        path = path.format(run=self.run_id)
        http = httpx.Client(base_url=self.d.url, headers={"Authorization": f"Bearer {self.d.key}"},
                            timeout=httpx.Timeout(30, connect=2))
        while not self._stop.is_set():
            try:
                r = http.request(method, path, json={"payload": "{}"} if method == "POST" else None)
                self.outcomes.append((path, r.status_code, r.text[:200]))
            except httpx.HTTPError as exc:  # refused, reset: the server has stopped
                self.outcomes.append((path, type(exc).__name__, None))
                http.close()
                http = httpx.Client(base_url=self.d.url,
                                    headers={"Authorization": f"Bearer {self.d.key}"},
                                    timeout=httpx.Timeout(30, connect=2))
                time.sleep(0.01)
        http.close()

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_requests_during_sigterm_never_get_a_500(tmp_path: Path) -> None:
    d = _daemon(tmp_path, TRIGGER_LOCAL_SHUTDOWN_GRACE_S="1")
    try:
        busy = d.trigger("sleeper", {"seconds": 30})
        wait_for(lambda: _started(d, busy), 30, what="a run to be executing")
        with Hammer(d, busy) as hammer:
            wait_for(lambda: len(hammer.outcomes) >= 40, 30, what="requests before the signal")
            code, _ = _sigterm_and_time(d)
            after = len(hammer.outcomes)
            wait_for(lambda: len(hammer.outcomes) >= after + 8, 30, what="requests after the exit")
        assert code == 0
        answered = [o for o in hammer.outcomes if isinstance(o[1], int)]
        bad = [o for o in answered if o[1] >= 500 and o[1] != 503]
        assert not bad, bad[:5]
        assert len(answered) >= 40
        assert any(not isinstance(o[1], int) for o in hammer.outcomes)  # it did stop answering
        assert "store is not open" not in d.log_text()
    finally:
        d.close()
