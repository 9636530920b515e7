"""The supervisor (supervise.py): a failing round is retried with back-off, even when reporting
it fails too; a full disk is waited out; a loop past its failure limit, or one whose task ends
unasked, is fatal; the dispatcher puts back the runs a failed round took off their queue; and a
task process retries a completion the daemon refused for a full disk (507)."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.engine_support import T0, ProbeExecutor, open_engine
from trigger_local import supervise
from trigger_local.clock import FakeClock
from trigger_local.disk import disk_full_error
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.logs import SafePrintLogger
from trigger_local.sdk.worker_client import WorkerClient
from trigger_local.store.models import EXECUTING, QUEUED, Run, TaskDef
from trigger_local.supervise import Supervisor


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "BACKOFF_FIRST_S", 0.001)
    monkeypatch.setattr(supervise, "BACKOFF_MAX_S", 0.01)


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.001)


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


class Steps:
    """A step that raises the queued errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await asyncio.sleep(0.001)


def test_backoff_doubles_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "BACKOFF_FIRST_S", 0.1)
    monkeypatch.setattr(supervise, "BACKOFF_MAX_S", 5.0)
    assert [supervise.backoff_s(n) for n in (1, 2, 3, 7, 100)] == [0.1, 0.2, 0.4, 5.0, 5.0]


async def test_a_failing_round_is_retried_and_the_loop_recovers(tmp_path: Path) -> None:
    sup = Supervisor(failure_limit=5, home=tmp_path)
    step = Steps(RuntimeError("one"), RuntimeError("two"))
    loop = sup.start("worker", step)
    await until(lambda: step.calls >= 2)
    await until(lambda: loop.failures == 0 and step.calls >= 3)
    assert loop.running and sup.health()["ok"] is True and sup.fatal_reason is None
    await sup.stop_all(1.0)


async def test_a_loop_survives_when_logging_its_failure_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    class FullDiskLogger:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> None:
                raise enospc()
            return fail

    monkeypatch.setattr(supervise, "log", FullDiskLogger())
    sup = Supervisor(failure_limit=50, home=tmp_path)
    step = Steps(*[RuntimeError(f"round {i}") for i in range(5)])
    loop = sup.start("dispatcher", step)
    await until(lambda: step.calls >= 6 and loop.failures == 0)
    assert loop.running and sup.fatal_reason is None
    assert "loop round failed" in capfd.readouterr().err  # the fallback: a bare write to fd 2
    await sup.stop_all(1.0)


def test_the_daemon_logger_drops_a_line_it_cannot_write() -> None:
    class FullFile:
        def write(self, text: str) -> int:
            raise enospc()

        def flush(self) -> None:
            raise enospc()

    SafePrintLogger(FullFile()).error("dispatch round failed")  # type: ignore[arg-type]


async def test_a_full_disk_is_waited_out_and_never_counts_as_a_fault(tmp_path: Path) -> None:
    sup = Supervisor(failure_limit=2, home=tmp_path)
    step = Steps(*[enospc() for _ in range(10)],
                 sqlite3.OperationalError("database or disk is full"))
    loop = sup.start("dispatcher", step)
    await until(lambda: loop.failures >= 3)
    health = sup.health()
    assert health["ok"] is False and health["loops"]["dispatcher"]["failing"] is True
    assert health["loops"]["dispatcher"]["error"] \
        == f"disk full at {tmp_path}: free space, then retry"
    await until(lambda: loop.failures == 0)
    assert sup.fatal_reason is None and sup.health()["ok"] is True
    await sup.stop_all(1.0)


async def test_failing_past_the_limit_is_fatal_once(tmp_path: Path) -> None:
    reasons: list[str] = []
    sup = Supervisor(failure_limit=3, home=tmp_path)
    sup.on_fatal = reasons.append
    step = Steps(*[KeyError("gone") for _ in range(10)])
    loop = sup.start("dispatcher", step)
    await until(lambda: not loop.running)
    assert step.calls == 3
    assert reasons == ["the dispatcher loop failed 3 times in a row (last: KeyError: 'gone')"]
    assert sup.health()["ok"] is False and sup.health()["loops"]["dispatcher"]["running"] is False


async def test_a_loop_whose_task_ends_unasked_is_fatal(tmp_path: Path) -> None:
    reasons: list[str] = []
    sup = Supervisor(home=tmp_path)
    sup.on_fatal = reasons.append
    loop = sup.start("timers", Steps(asyncio.CancelledError()))
    await until(lambda: not loop.running)
    await until(lambda: bool(reasons))
    assert reasons == ["the timers loop was cancelled while the daemon was running"]


async def test_stop_ends_a_sleeping_step_and_is_not_fatal(tmp_path: Path) -> None:
    sup = Supervisor(home=tmp_path)
    woken = asyncio.Event()

    async def sleepy() -> None:
        await woken.wait()

    loop = sup.start("sleepy", sleepy, on_stop=woken.set)
    await asyncio.sleep(0)
    await sup.stop("sleepy", timeout_s=1.0)
    assert not loop.running and sup.fatal_reason is None


async def test_retry_until_done_waits_out_a_full_disk(tmp_path: Path) -> None:
    sup = Supervisor(failure_limit=1, home=tmp_path)
    step = Steps(enospc(), enospc(), enospc())

    async def write() -> str:
        await step()
        return "written"

    assert await sup.retry_until_done("releasing a run", write) == "written"
    assert step.calls == 4 and sup.fatal_reason is None


async def test_a_failed_job_is_reported_not_lost(tmp_path: Path) -> None:
    sup = Supervisor(home=tmp_path)

    async def boom() -> None:
        raise RuntimeError("job went wrong")

    with structlog.testing.capture_logs() as logs:
        task = sup.spawn("cleanup", boom())
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert [(e["event"], e["job"], str(e["exc_info"])) for e in logs] == [
        ("background job failed", "cleanup", "job went wrong")]


def test_disk_full_errors_are_recognised(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "tiny.db")
    conn.execute("PRAGMA max_page_count = 3")
    conn.execute("CREATE TABLE t (v BLOB)")
    with pytest.raises(sqlite3.OperationalError) as real:  # SQLite's own SQLITE_FULL
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    conn.close()
    full = disk_full_error(real.value, tmp_path)
    assert full is not None and full.status == 507 and full.code == "disk_full"
    assert full.message == f"disk full at {tmp_path}: free space, then retry"
    assert disk_full_error(enospc(), tmp_path) is not None
    # plenty of room here
    assert disk_full_error(sqlite3.OperationalError("disk I/O error"), tmp_path) is None
    assert disk_full_error(RuntimeError("no"), tmp_path) is None


# -- the dispatcher -------------------------------------------------------------------------------
class FlakyExecutor(ProbeExecutor):
    """Starts runs, except that its first `assign` fails as on a full disk."""

    room = 5

    def __init__(self, engine: Engine) -> None:
        self.engine, self.fail_next, self.started = engine, True, []

    async def assign(self, run: Run) -> bool:
        if self.fail_next:
            self.fail_next = False
            raise enospc()
        started = await self.engine.start_attempt(run, "worker_1", None)
        self.started.append(run.id)
        return started is not None


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0),
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def test_runs_a_failed_round_took_off_their_queue_are_started_later(engine: Engine) -> None:
    ids = [(await engine.trigger(TriggerRequest(task_id="hello"))).run.id for _ in range(3)]
    executor = FlakyExecutor(engine)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        await dispatcher.tick()
    read = engine.queries
    # a round starts its runs concurrently: the one whose start failed is still QUEUED (the
    # dispatcher reserved it, engine/dequeue.py: nothing was written) and still reserved
    statuses = [(await read.runs.get(i)).status for i in ids]  # type: ignore[union-attr]
    assert sorted(statuses) == [EXECUTING, EXECUTING, QUEUED]
    assert len(engine.ctx.reserved) == 1
    await dispatcher.tick()
    assert sorted(executor.started) == sorted(ids)
    assert {(await read.runs.get(i)).status for i in ids} == {EXECUTING}  # type: ignore[union-attr]


# -- the worker protocol client -------------------------------------------------------------------
class FullThenFreeTransport:
    """Answers 507 disk_full twice, then 200 (a fake at the I/O edge)."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]:
        self.sent += 1
        if self.sent <= 2:
            return 507, (b'{"error": "disk full at /home: free space, then retry", '
                         b'"code": "disk_full"}')
        return 200, b'{"status": "COMPLETED"}'

    async def reset(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_a_completion_refused_for_a_full_disk_is_retried_until_it_lands() -> None:
    transport = FullThenFreeTransport()
    client = WorkerClient("http://daemon", orphan_timeout=30, transport=transport)
    answer = await client.run_call("POST", "run_1", "attempts/1/complete", "tok", body={"ok": True})
    assert answer == {"status": "COMPLETED"} and transport.sent == 3
