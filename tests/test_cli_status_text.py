"""`trigger-local status` in plain words (an outside look found "resumes messages 0 answers 0",
and "checkpoint yes" next to "checkpoints available yes"): every line says what it counts, and
no fact shows twice. The document is the daemon's own shape (`GET /api/v1/local/status`)."""

from __future__ import annotations

from typing import Any

from trigger_local.cli.status_text import status_lines


def _document(**executor: Any) -> dict[str, Any]:
    return {
        "pid": 8178, "version": "0.1.0",
        "executor": {"name": "process", "processes": 3, "states": {"idle": 1, "busy": 2},
                     "held_runs": 4, "resumes": {"messages": 7, "answers": 2}, "handed_over": 5,
                     "checkpoint": True,
                     "checkpoints": {"available": True, "reason": "", "replays": False,
                                     "criu_version": "4.1.1", "dir": "/h/checkpoints",
                                     "count": 2, "bytes": 3 * 2**20},
                     "eviction": {"after_s": 30.0, "max_held": 1000, "exclusive_after_s": None,
                                  "evicted": 5}, **executor},
        "started_at": 1796042406.3, "home": "/h", "concurrency": 25, "max_processes": 100,
        "runs": {"COMPLETED": 10, "QUEUED": 2}, "channels": 1,
        "channelFrames": {"messages": 10, "poll": 9, "complete": 3},
        "channelSent": {"messages": 8, "frames": 12}}


def _labels(lines: list[str]) -> list[str]:
    """Each line's label: the text before the run of spaces that starts its value."""
    return [line.strip().split("  ")[0].strip() for line in lines]


def test_every_status_line_says_what_it_counts() -> None:
    lines = status_lines(_document())
    text = "\n".join(lines)
    for jargon in ("messages 7", "answers 2", "after s", "max held", "held runs", "evicted",
                   "channelFrames", "channelSent", "max processes", "pid ", "_"):
        assert jargon not in text, (jargon, text)
    shown = {label: line.split(label, 1)[1].strip()
             for label, line in zip(_labels(lines), lines, strict=True)}
    assert shown["runs resumed in their process"] == "7 (sent in 2 batches)", text
    assert shown["task processes running"] == "3 (1 idle, 2 busy)", text
    assert shown["runs waiting in shared processes"] == "4", text
    assert shown["runs"] == "12: 10 COMPLETED, 2 QUEUED", text
    assert shown["messages to shared processes"] == "12 frames (in 8 messages)", text
    assert shown["messages from shared processes"] == "12: 9 poll, 3 complete (in 10 messages)", \
        text
    assert shown["runs started as others ended"] == "5", text
    assert shown["checkpoints on disk"] == "2, 3.0 MiB in /h/checkpoints", text
    assert shown["waiting runs leave memory"] == \
        "after 30 s of waiting, or when more than 1000 are held", text
    assert shown["runs let go of memory"] == "5", text
    assert shown["executor"] == "process", text  # tests/e2e/test_cli_messages.py reads it


def test_no_status_line_shows_twice() -> None:
    lines = status_lines(_document())
    labels = _labels(lines)
    assert len(labels) == len(set(labels)), lines
    # whether CRIU checkpoints waiting runs: one line (the document says it twice)
    about = [line for line in lines if "available" in line or line.split()[0] == "checkpoint"]
    assert [line.split() for line in about] == [["checkpoints", "available", "(CRIU", "4.1.1)"]]


def test_checkpoints_that_are_not_available_say_why() -> None:
    lines = status_lines(_document(checkpoint=False, checkpoints={
        "available": False, "reason": "criu is not installed"}))
    assert [line.split(None, 1)[1] for line in lines if line.split()[0] == "checkpoints"] == \
        ["not available: criu is not installed"], lines
    assert not [line for line in lines if "on disk" in line], lines


def test_a_failed_dump_and_an_exclusive_limit_are_said_in_words() -> None:
    checkpoints = {"available": True, "replays": True, "criu_version": "4.1.1", "dir": "/c",
                   "count": 0, "bytes": 0}
    eviction = {"after_s": 0, "max_held": 0, "exclusive_after_s": 5.0, "evicted": 0}
    text = "\n".join(status_lines(_document(checkpoints=checkpoints, eviction=eviction)))
    assert "waiting runs resume by replay, not CRIU" in text, text
    assert "never for waiting long, with no bound on how many are held" in text, text
    assert "leave memory after 5 s (their CRIU dumps failed)" in text, text


def test_a_field_the_daemon_adds_later_still_shows() -> None:
    lines = status_lines({"queue_depth": 3, "executor": {"name": "docker", "containers": 2,
                                                         "new_count": {"a": 1}}})
    assert "  queue depth" in "\n".join(lines) and any("new count" in x for x in lines), lines


def test_the_docker_executors_engine_line_says_what_is_available() -> None:
    lines = status_lines({"executor": {"name": "docker", "containers": 0, "available": False,
                                       "problem": "the Docker engine is not running",
                                       "fix": "start dockerd"}})
    assert [line.strip() for line in lines] == [
        "executor" + " " * 28 + "docker", "task containers" + " " * 19 + "0",
        "docker engine reachable" + " " * 11 + "no",
        "problem" + " " * 27 + "the Docker engine is not running",
        "to fix it" + " " * 25 + "start dockerd"], lines


def test_one_batch_and_one_message_are_singular() -> None:
    lines = status_lines({"resumes": {"messages": 1, "answers": 1},
                          "channelFrames": {"messages": 1, "poll": 1}})
    text = "\n".join(lines)
    assert "(sent in 1 batch)" in text, text
    assert "1: 1 poll (in 1 message)" in text, text
