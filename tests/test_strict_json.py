"""strict_json.py: strict parsing that names the field, and JSON.stringify-like writing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from trigger_local.api.auth import sign_jwt
from trigger_local.api.common import SafeJSONResponse
from trigger_local.errors import BadRequestError
from trigger_local.strict_json import dumps_answer, dumps_js, find_non_json, loads_strict


@pytest.mark.parametrize(("text", "field"), [
    ('{"a": NaN}', "a"), ('{"a": {"b": [1, Infinity]}}', "a.b[1]"), ("[-Infinity]", "[0]"),
    ('{"t": ["\\ud800"]}', "t[0]"), ('{"\\udfff": 1}', "\ufffd"), ('"\\udc00x"', "the value")])
def test_non_json_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(BadRequestError) as refused:
        loads_strict(text)
    shown = refused.value.message.replace("\udfff", "\ufffd")
    assert field in shown and "JSON has no NaN" in shown


def test_json_and_surrogate_pairs_pass() -> None:
    assert loads_strict('{"e": "\\ud83d\\ude00", "n": "NaN", "i": "Infinity"}') == \
        {"e": "\U0001F600", "n": "NaN", "i": "Infinity"}
    assert loads_strict(b'{"a": 1}') == {"a": 1}


def test_bytes_that_are_not_utf8_and_too_deep_documents_are_refused() -> None:
    with pytest.raises(BadRequestError, match="UTF-8"):
        loads_strict(b'"\xed\xa0\x80"')
    with pytest.raises(BadRequestError, match="deeper"):
        loads_strict("[" * 200 + "NaN" + "]" * 200)


def test_dumps_js_writes_what_javascript_writes() -> None:
    value = {"nan": float("nan"), "inf": [float("inf"), -float("inf")], "s": "a\ud800b",
             "\udc00": 1, "pair": "\U0001F600", "text": "NaN Infinity", "bs": "\\ud800"}
    text = dumps_js(value)
    assert json.loads(text) == {"nan": None, "inf": [None, None], "s": "a\ufffdb", "\ufffd": 1,
                                "pair": "\U0001F600", "text": "NaN Infinity", "bs": "\\ud800"}
    assert text.isascii() and find_non_json(json.loads(text)) is None
    assert dumps_js({"a": [1, "x"]}) == json.dumps({"a": [1, "x"]}, separators=(",", ":"))


@pytest.mark.parametrize(("text", "field"), [
    ('{"a": 1e400}', "a"), ('{"a": [1, -1.5E+400]}', "a[1]"), ("1e999", "the value"),
    ('{"a": ' + "9" * 400 + '.0}', "a"), ('{"a": 1' + "0" * 290 + 'e99}', "a"),
    ('[-' + "9" * 210 + '.5E+99]', "[0]")])
def test_a_number_too_big_for_a_float_is_refused_naming_the_field(text: str, field: str) -> None:
    """1e400 is valid JSON text that Python reads as inf: stored, it would be written back as
    Infinity (or null) — refused like Infinity itself."""
    with pytest.raises(BadRequestError) as refused:
        loads_strict(text)
    assert f"{field} is a number too big to be finite" in refused.value.message


def test_big_but_finite_numbers_and_lookalikes_in_strings_pass() -> None:
    assert loads_strict('{"a": 1e308, "b": "1e400", "id": "run_x2e123"}') == \
        {"a": 1e308, "b": "1e400", "id": "run_x2e123"}
    assert loads_strict('{"n": ' + "9" * 400 + "}") == {"n": int("9" * 400)}


def test_an_integer_past_pythons_digit_limit_is_refused_without_pythons_advice() -> None:
    with pytest.raises(BadRequestError) as refused:
        loads_strict('{"a": ' + "9" * 5000 + "}")
    assert "more than 4300 digits" in refused.value.message
    assert "sys." not in refused.value.message


def _encoders_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the `json.JSONEncoder`s made from now on."""
    made: list[int] = []
    init = json.JSONEncoder.__init__

    def counting(self: json.JSONEncoder, *args: Any, **kwargs: Any) -> None:
        made.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(json.JSONEncoder, "__init__", counting)
    return made


def test_answers_frames_and_tokens_are_written_with_encoders_made_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trigger's answer, its token and the channel's frames: `json.dumps` with options
    made a `JSONEncoder` per call, half the time of a small answer's JSON (issue #13). The
    text is what that wrote: compact, not ASCII-escaped; NaN as JavaScript writes it; a lone
    surrogate as U+FFFD in an HTTP answer."""
    value = {"id": "run_1", "isCached": False, "t": ["é", 1.5, None]}
    made = _encoders_made(monkeypatch)
    texts = [dumps_answer(value) for _ in range(3)]
    tokens = [sign_jwt("secret", ["read:runs:run_1"], 1_700_000_000.0) for _ in range(3)]
    body = SafeJSONResponse(value).body
    assert made == []
    assert texts == [json.dumps(value, ensure_ascii=False, separators=(",", ":"))] * 3
    assert body == texts[0].encode()
    claims = json.loads(base64.urlsafe_b64decode(tokens[0].split(".")[1] + "=="))
    assert claims["scopes"] == ["read:runs:run_1"] and claims["exp"] == 1_700_003_600
    assert dumps_answer({"a": float("nan")}) == '{"a":null}'
    assert SafeJSONResponse({"s": "\ud800"}).body == b'{"s":"\\ufffd"}'


def test_dumps_js_makes_an_encoder_once_per_default_and_writes_what_json_dumps_wrote(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's output (`packets.encode`) and every channel frame of a task process go through
    `dumps_js` with a `default`: `json.dumps` made an encoder for each (issue #13)."""
    from trigger_local import strict_json

    def default(obj: Any) -> Any:
        return repr(obj)

    value = {"a": [1, 2.5, "é"], "b": frozenset({1})}  # "b" through `default`
    spellings = ((",", ":"), None)
    expected = [json.dumps(value, default=default, separators=s) for s in spellings]
    for separators in spellings:
        dumps_js(value, default=default, separators=separators)  # its encoder, made once
    made = _encoders_made(monkeypatch)
    assert [[dumps_js(value, default=default, separators=s) for _ in range(3)]
            for s in spellings] == [[text] * 3 for text in expected]
    assert made == []
    assert dumps_js({"x": {1}}, default=sorted) == '{"x":[1]}'
    for n in range(40):  # a new `default` each call: still right, and the cache stays bounded
        assert dumps_js([object()], default=lambda o, n=n: n) == f"[{n}]"
    assert len(strict_json._ENCODERS) <= strict_json._ENCODERS_MAX


@pytest.mark.parametrize(("text", "field"), [
    ('{"a": NaN, "a": 1}', "a"), ('{"a": {"b": 1e400, "b": 2}}', "a.b"),
    ('[{"s": "\\ud800", "s": "x"}]', "[0].s"), ('{"a": 1, "a": -Infinity, "a": 2}', "a")])
def test_a_key_repeated_after_a_value_that_is_not_json_is_refused(text: str, field: str) -> None:
    """The parser keeps a repeated key's last value, so the NaN before it was never looked at,
    while the text (a payload packet is stored as sent) still holds it: a JavaScript client
    that parses the stored packet (realtime rows carry it as sent) fails on the NaN."""
    with pytest.raises(BadRequestError) as refused:
        loads_strict(text)
    assert refused.value.details["field"] == field
