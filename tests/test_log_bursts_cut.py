"""A log line over the payload limit is cut with a marker that says how much of its message
was cut (trigger_local/sdk/log_bursts.py): never "0 bytes" — a line whose attributes were what
was too large keeps its whole message and says so in its attributes."""

from __future__ import annotations

from trigger_local.sdk import log_bursts

BUDGET = 8 * 1024


def _entry(message: str, attributes: dict[str, str]) -> dict[str, object]:
    return {"at": "2026-11-30T00:00:00Z", "level": "info", "message": message,
            "attributes": attributes, "kind": "log"}


def test_a_line_over_the_limit_by_its_attributes_keeps_its_message_without_a_marker() -> None:
    entry = _entry("short and whole", {"blob": "z" * (2 * BUDGET)})
    [[out]] = list(log_bursts.bursts([entry], BUDGET))
    assert out["message"] == "short and whole"
    assert "truncated" in str(out["attributes"])
    assert log_bursts.size(out) <= BUDGET


def test_a_line_over_the_limit_by_its_message_says_how_much_was_cut() -> None:
    for message in ("m" * (2 * BUDGET), "\u65e5" * BUDGET, "\u65e5" * (BUDGET // 5)):
        entry = _entry(message, {})
        [[out]] = list(log_bursts.bursts([entry], BUDGET))
        text = str(out["message"])
        assert "[truncated: " in text and "[truncated: 0 " not in text, text[-80:]
        cut = int(text.rsplit("[truncated: ", 1)[1].split(" ", 1)[0])
        kept = text.rsplit("… [truncated: ", 1)[0]
        assert cut == len(message.encode()) - len(kept.encode()) > 0
        assert log_bursts.size(out) <= BUDGET
