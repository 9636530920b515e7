"""Packets: (string, data type) pairs for payloads and outputs, and metadata operations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pydantic import BaseModel

from trigger_local import packets


class Point(BaseModel):
    x: int
    when: datetime


def test_encode_none_is_an_absent_payload() -> None:
    assert packets.encode(None) == (None, packets.JSON)


def test_encode_is_compact_json() -> None:
    assert packets.encode({"a": [1, 2], "b": "é"}) == ('{"a":[1,2],"b":"\\u00e9"}', packets.JSON)


def test_encode_handles_models_dates_and_sets() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    data, _ = packets.encode({"p": Point(x=1, when=when), "d": date(2024, 1, 2), "s": {3},
                              "t": (1, 2)})
    assert json.loads(data or "") == {"p": {"x": 1, "when": "2024-01-02T03:04:05Z"},
                                      "d": "2024-01-02", "s": [3], "t": [1, 2]}


def test_encode_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        packets.encode(object())


@pytest.mark.parametrize(("data", "data_type", "value"), [
    (None, packets.JSON, None),
    ("", packets.JSON, None),
    ('{"a":1}', packets.JSON, {"a": 1}),
    ('{"a":1}', None, {"a": 1}),
    ("hello", packets.TEXT, "hello"),
    ('{"json":{"a":1},"meta":{"values":{"d":["Date"]}}}', packets.SUPER_JSON, {"a": 1}),
    ('{"a":1}', packets.SUPER_JSON, {"a": 1}),
    ("[1,2]", packets.SUPER_JSON, [1, 2]),
])
def test_decode(data: str | None, data_type: str | None, value: object) -> None:
    assert packets.decode(data, data_type) == value


def test_round_trip() -> None:
    value = {"n": 1, "xs": [1.5, None, True], "s": "x"}
    assert packets.decode(*packets.encode(value)) == value


def test_decode_bad_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        packets.decode("{", packets.JSON)


class TestMetadataOperations:
    def test_each_operation(self) -> None:
        ops = [
            {"type": "set", "key": "a", "value": 1},
            {"type": "delete", "key": "gone"},
            {"type": "increment", "key": "n", "value": 2},
            {"type": "increment", "key": "fresh"},
            {"type": "increment", "key": "text", "value": 5},
            {"type": "append", "key": "list", "value": "c"},
            {"type": "append", "key": "scalar", "value": 2},
            {"type": "append", "key": "new", "value": "x"},
            {"type": "remove", "key": "drop", "value": 1},
            {"type": "remove", "key": "a", "value": 1},  # not a list: unchanged
            {"type": "update", "value": {"u": True}},
            {"type": "unknown", "key": "a"},
        ]
        start = {"gone": 1, "n": 1, "text": "x", "list": ["a", "b"], "scalar": 1, "drop": [1, 2, 1]}
        assert packets.apply_metadata_operations(start, ops) == {
            "a": 1, "n": 3, "fresh": 1, "text": 5, "list": ["a", "b", "c"], "scalar": [1, 2],
            "new": ["x"], "drop": [2], "u": True}

    def test_the_input_is_not_mutated(self) -> None:
        start = {"list": [1], "n": 1}
        packets.apply_metadata_operations(start, [{"type": "append", "key": "list", "value": 2},
                                                  {"type": "delete", "key": "n"}])
        assert start == {"list": [1], "n": 1}
