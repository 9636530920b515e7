"""The bookkeeping of shared task processes (executors/sharing.py): room in runs, not
processes; messages kept until acknowledged; a waiting run's end is told to its coroutine."""

from __future__ import annotations

from pathlib import Path

from trigger_local.config import DaemonSettings
from trigger_local.engine import suspension
from trigger_local.executors.sharing import SharedRuns
from trigger_local.executors.workers import BUSY, HELD, IDLE, WorkerHandle
from trigger_local.sdk import waits as sdk_waits
from trigger_local.sdk.context import Resumed
from trigger_local.store.models import WP_DATETIME, Waitpoint


def shared(tmp_path: Path, **settings: int) -> tuple[SharedRuns, WorkerHandle, list[int]]:
    woken: list[int] = []
    runs = SharedRuns(DaemonSettings(home=tmp_path, **settings), lambda: woken.append(1))
    worker = WorkerHandle(id="w1", version_id="v1", pid=1, log_path=tmp_path / "w1.log",
                          shared=True, state=IDLE)
    return runs, worker, woken


def test_room_counts_executing_runs_and_a_waiting_run_frees_its_place(tmp_path: Path) -> None:
    runs, worker, woken = shared(tmp_path, runs_per_process=2)
    assert runs.room(worker) == 2
    runs.assign(worker, "r1", 1, {"run_id": "r1"})
    runs.assign(worker, "r2", 1, {"run_id": "r2"})
    assert runs.room(worker) == 0 and worker.state == BUSY
    runs.moved(worker, "r1", "WAITING", attempt_ended=False)
    runs.moved(worker, "r2", "WAITING", attempt_ended=False)
    assert runs.room(worker) == 2 and worker.state == HELD and woken
    assert runs.held_runs([worker]) == 2
    other = WorkerHandle(id="w2", version_id="v1", pid=2, log_path=tmp_path / "w2.log")
    assert runs.room(other) == 0  # an exclusive process has no shared room
    assert runs.pick([other, worker], "v1") is worker
    assert runs.pick([worker], "v2") is None


def test_a_process_that_took_its_share_of_runs_takes_no_more(tmp_path: Path) -> None:
    runs, worker, _ = shared(tmp_path, runs_per_process=5, warm_runs_per_process=3)
    for i in range(3):
        runs.assign(worker, f"r{i}", 1, {"run_id": f"r{i}"})
    assert runs.room(worker) == 0


async def test_messages_stay_until_acknowledged(tmp_path: Path) -> None:
    runs, worker, _ = shared(tmp_path)
    runs.assign(worker, "r1", 1, {"run_id": "r1"})
    first = await runs.next(worker, 0.01, lambda w: False, ack=0)
    assert isinstance(first, list) and [m["type"] for m in first] == ["assign"]
    # the answer was lost: the next poll acknowledges nothing new and gets it again
    again = await runs.next(worker, 0.01, lambda w: False, ack=0)
    assert again == first
    seq = first[0]["seq"]
    assert await runs.next(worker, 0.01, lambda w: False, ack=seq) is None
    runs.moved(worker, "r1", "WAITING", attempt_ended=False)
    runs.moved(worker, "r1", "CANCELED", attempt_ended=True)  # ended while it waited
    told = await runs.next(worker, 0.01, lambda w: False, ack=seq)
    assert isinstance(told, list)
    assert [(m["type"], m["runId"]) for m in told] == [("resume", "r1")]
    assert told[0]["seq"] > seq
    assert worker.runs == {} and worker.state == IDLE


async def test_retire_only_a_process_that_holds_no_run(tmp_path: Path) -> None:
    runs, worker, _ = shared(tmp_path)
    runs.assign(worker, "r1", 1, {"run_id": "r1"})
    runs.moved(worker, "r1", "WAITING", attempt_ended=False)
    answer = await runs.next(worker, 0.01, lambda w: True, ack=None)  # takes the assign for good
    assert isinstance(answer, list)
    assert await runs.next(worker, 0.01, lambda w: True, ack=None) is None  # still holds r1
    runs.moved(worker, "r1", "COMPLETED", attempt_ended=True)
    await runs.next(worker, 0.01, lambda w: True, ack=None)  # the resume of the ended run
    assert await runs.next(worker, 0.01, lambda w: True, ack=None) == "retire"


class _Executor:
    def __init__(self, shares: bool) -> None:
        self.shares = shares

    def can_checkpoint(self) -> bool:
        return True

    def shares_process(self, run_id: str) -> bool:
        return self.shares


def test_a_run_sharing_its_process_is_held_never_checkpointed(tmp_path: Path) -> None:
    settings = DaemonSettings(home=tmp_path)
    wp = Waitpoint(id="wp", type=WP_DATETIME, status="WAITING", created_at=0.0,
                   complete_after=3600.0)
    assert suspension.decide(wp, 0.0, settings, _Executor(False), "r1") == suspension.CHECKPOINT
    assert suspension.decide(wp, 0.0, settings, _Executor(True), "r1") == suspension.HOLD
    reason = suspension.hold_reason(wp, 0.0, settings, _Executor(True), "r1")
    assert reason and "shares its task process" in reason


async def test_a_resume_carries_the_result_of_the_wait_that_unblocked_the_run(
        tmp_path: Path) -> None:
    """The resume message of a run that a waitpoint's completion unblocked carries that wait's
    result (one read by the daemon instead of a round trip of the run's, issue #13); a big
    result, or a run the daemon knows no unblocking waitpoint of, is read by the run."""
    reads: list[tuple[str, str]] = []

    async def wait_result(run_id: str, waitpoint_id: str) -> dict[str, object]:
        reads.append((run_id, waitpoint_id))
        output = "x" * 20_000 if run_id == "big" else '{"n":1}'
        return {"ok": True, "status": "COMPLETED", "output": output, "outputType": "json"}

    runs = SharedRuns(DaemonSettings(home=tmp_path), lambda: None, wait_result)
    worker = WorkerHandle(id="w1", version_id="v1", pid=1, log_path=tmp_path / "w1.log",
                          shared=True, state=IDLE)
    for run_id in ("r1", "big", "plain"):
        runs.assign(worker, run_id, 1, {"run_id": run_id})
        runs.moved(worker, run_id, "WAITING", attempt_ended=False, unblocked_by="wp_" + run_id)
        if run_id != "plain":
            runs.moved(worker, run_id, "QUEUED", attempt_ended=False,
                       unblocked_by="wp_" + run_id)
        await runs.resumed(worker, run_id)
    told = {m["runId"]: m for m in worker.messages if m["type"] == "resume"}
    assert told["r1"]["waitpointId"] == "wp_r1" and told["r1"]["result"]["output"] == '{"n":1}'
    assert "result" not in told["big"] and "result" not in told["plain"]
    assert reads == [("r1", "wp_r1"), ("big", "wp_big")]
    assert worker.executing == {"r1", "big", "plain"} and worker.state == BUSY


async def test_a_resumed_run_takes_the_result_it_was_sent_and_reads_nothing() -> None:
    resumed = Resumed()
    resumed.word = ("wp_1", {"ok": True, "status": "COMPLETED", "output": None})
    resumed.set()

    class NoReads:
        client = type("Client", (), {"channel": None})()

        async def call(self, *args: object, **kwargs: object) -> dict[str, object]:
            raise AssertionError("read its wait")

    result = await sdk_waits._await_resume(NoReads(), resumed, "wp_1")  # type: ignore[arg-type]
    assert result["status"] == "COMPLETED" and resumed.word is None and not resumed.is_set()


async def test_runs_resumed_in_place_are_told_together_with_their_results(
        tmp_path: Path) -> None:
    """A timer resumed these runs in its transaction (engine/resuming.py): the RunResumed from
    WAITING carries each wait's result, and the process gets every resume of that commit in one
    poll answer, results included (nothing read back; a big result is left for the run)."""
    async def no_reads(run_id: str, waitpoint_id: str) -> dict[str, object]:
        raise AssertionError("read the wait back")

    runs = SharedRuns(DaemonSettings(home=tmp_path), lambda: None, no_reads)
    worker = WorkerHandle(id="w1", version_id="v1", pid=1, log_path=tmp_path / "w1.log",
                          shared=True, state=IDLE)
    small = {"ok": True, "status": "COMPLETED", "output": None, "outputType": "json"}
    big = {**small, "output": "x" * 20_000}
    first = await runs.next(worker, 0.01, lambda w: False, ack=0)  # nothing yet
    assert first is None
    for run_id in ("r1", "r2", "big"):
        runs.assign(worker, run_id, 1, {"run_id": run_id})
        runs.moved(worker, run_id, "WAITING", attempt_ended=False)
    given = await runs.next(worker, 0.01, lambda w: False, ack=0)
    assert isinstance(given, list)
    ack = given[-1]["seq"]
    for run_id in ("r1", "r2", "big"):  # one commit's events, published one after another
        runs.moved(worker, run_id, "EXECUTING", attempt_ended=False, unblocked_by="wp_" + run_id,
                   in_place=True, result=big if run_id == "big" else small)
    runs.moved(worker, "r1", "EXECUTING", attempt_ended=False, in_place=True, result=small)
    told = await runs.next(worker, 0.01, lambda w: False, ack=ack)
    assert isinstance(told, list) and [m["runId"] for m in told] == ["r1", "r2", "big"]
    assert told[0]["waitpointId"] == "wp_r1" and told[0]["result"] == small
    assert "result" not in told[2]
    assert worker.executing == {"r1", "r2", "big"} and worker.state == BUSY
    assert runs.describe([worker])["resumes"] == {"messages": 3, "answers": 1}
