"""When the docker executor checkpoints waiting runs, and why not (the reason a held run
carries)."""

from __future__ import annotations

from trigger_local.executors.criu import Capability
from trigger_local.executors.docker_checkpoints import decide_capability

CRIU_OK = Capability(True, "", "4.1.1")


def test_an_experimental_engine_with_a_working_criu_checkpoints() -> None:
    found = decide_capability("auto", {"ExperimentalBuild": True}, CRIU_OK)
    assert found.ok and found.reason == "" and found.version == "4.1.1"


def test_an_engine_without_experimental_holds_and_says_how_to_fix_it() -> None:
    found = decide_capability("auto", {"ExperimentalBuild": False}, CRIU_OK)
    assert not found.ok and "--experimental" in found.reason and "setup-docker.sh" in found.reason


def test_a_broken_criu_holds_with_criu_s_reason() -> None:
    found = decide_capability("auto", {"ExperimentalBuild": True},
                              Capability(False, "`criu check` fails"))
    assert not found.ok and "`criu check` fails" in found.reason


def test_no_engine_answer_and_turned_off_both_hold() -> None:
    assert "not available" in decide_capability("auto", None, CRIU_OK).reason
    off = decide_capability("off", {"ExperimentalBuild": True}, CRIU_OK)
    assert not off.ok and "turned off" in off.reason
