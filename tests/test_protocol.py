"""The worker protocol's one module (trigger_local/protocol.py): what one side builds, the other
reads back, and docs/worker-protocol.md lists every message, frame and run call it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_local import protocol
from trigger_local.protocol import Frame, PollAnswer, RunCall

DOC = (Path(__file__).resolve().parent.parent / "docs" / "worker-protocol.md").read_text()


def test_the_daemons_messages_read_back_as_built() -> None:
    assignment = {"run_id": "run_1", "attempt": 2, "run_token": "t"}
    built = [protocol.numbered(m, n) for n, m in enumerate([
        protocol.assign(assignment), protocol.resume("run_1"), protocol.abort("run_1", "cancel"),
        protocol.evict("run_1"), protocol.reconcile({"run_1": 2})], start=1)]
    answer = PollAnswer.parse(protocol.messages_answer(built))
    assert [(m.type, m.seq) for m in answer.messages] == [
        (kind, n) for n, kind in enumerate(protocol.MESSAGE_TYPES, start=1)]
    assert {m.run_id for m in answer.messages[:4]} == {"run_1"}
    assert answer.messages[0].assignment == assignment
    assert answer.messages[2].reason == "cancel"
    assert answer.messages[4].runs == {"run_1": 2}
    assert not answer.retire and answer.assignment is None


def test_poll_answers() -> None:
    assert PollAnswer.parse(protocol.retire_answer()).retire
    assert PollAnswer.parse(protocol.nothing_answer()) == PollAnswer()
    assert PollAnswer.parse(protocol.assignment_answer({"run_id": "r"})).assignment == {
        "run_id": "r"}
    # a newer daemon's message of a kind this runtime does not know is kept, and ignored later
    assert PollAnswer.parse({"messages": [{"type": "later", "seq": 3}]}).messages[0].type == "later"


def test_channel_frames_read_back_as_built() -> None:
    assert Frame.parse(protocol.poll_frame(7)) == Frame(protocol.POLL, ack=7)
    assert Frame.parse({"poll": -1}) == Frame(protocol.POLL, ack=None)
    wait = Frame.parse({"id": 4, **protocol.wait_frame("run_1", 1, "t", {"kind": "token"})})
    assert wait is not None and (wait.kind, wait.id) == (protocol.WAIT, 4)
    assert wait.body == {"kind": "token", "runId": "run_1", "attempt": 1, "runToken": "t"}
    read = Frame.parse({"id": 5, **protocol.read_wait_frame("run_1", "t", "waitpoint_1")})
    assert read is not None and read.kind == protocol.READ_WAIT
    done = Frame.parse({"id": 6, **protocol.completions_body([{"runId": "run_1"}])})
    assert done is not None and done.kind == protocol.COMPLETIONS
    assert Frame.parse({"id": 1, "unknown": {}}) is None


@pytest.mark.parametrize("name", sorted(protocol.RUN_CALLS))
def test_a_run_call_reads_back_and_names_its_http_route(name: str) -> None:
    frame = Frame.parse({"id": 1, **protocol.call_frame(name, "run_1", 3, "t", {"a": 1})})
    assert frame is not None and frame.kind == protocol.CALL
    call = RunCall.parse(frame.body)
    assert (call.name, call.run_id, call.attempt, call.token, call.body) == (
        name, "run_1", 3, "t", {"a": 1})
    method, route = protocol.http_route(name, 3)
    assert method in ("POST", "PUT") and "{" not in route


@pytest.mark.parametrize("raw", [None, {"name": "nope"}, {"name": "logs", "attempt": 0,
                                                           "body": {}},
                                 {"name": "logs", "attempt": 1, "body": []}])
def test_a_malformed_run_call_says_what_is_wrong(raw: object) -> None:
    with pytest.raises(ValueError, match="call"):
        RunCall.parse(raw)


def test_the_doc_lists_what_the_module_holds() -> None:
    names = [*protocol.MESSAGE_TYPES, *protocol.FRAME_KINDS, protocol.POLL, *protocol.RUN_CALLS]
    missing = [name for name in names if f'"{name}"' not in DOC and f"`{name}`" not in DOC]
    assert missing == [], f"docs/worker-protocol.md does not list {missing}"
    assert "trigger_local/protocol.py" in DOC


def test_a_call_answer_keeps_the_frame_id_apart_from_the_routes_id() -> None:
    # a child trigger's answer has an `id` of its own: the frame's must survive it
    frame = protocol.answer_frame(9, protocol.call_answer({"id": "run_child", "isCached": False}))
    assert protocol.is_answer(frame) and frame["id"] == 9
    assert protocol.call_result(frame) == {"id": "run_child", "isCached": False}
