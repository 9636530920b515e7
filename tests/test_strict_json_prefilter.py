"""`may_be_suspect` (strict_json.py) lets a text skip `_SUSPECT`'s search only when that search
could not match it: every text `_SUSPECT` finds something in is one it says may be suspect, so
the strict parser refuses exactly what it refused before, and a plain text is parsed at once."""

from __future__ import annotations

import json
import random

import pytest

from trigger_local.errors import BadRequestError
from trigger_local.strict_json import _SUSPECT, find_non_json, loads_strict, may_be_suspect

SUSPECT = ['{"a": NaN}', '[Infinity]', '[-Infinity]', '{"s": "\\ud800"}', '"\\uDBFF\\uDC00"',
           '{"s": "\ud800"}', '[1e400]', '[1E+400]', '[-2.5e-308]', '{"n": 1.e400}',
           '[' + "9" * 300 + ']', '{"a": ' + "1" * 301 + '}', '[' + "9" * 210 + 'e99]',
           '{"x": "NaN inside a string"}', '{"é": 1}', '[1,\t1e999]', '{"a":[3e100]}',
           '[\u0661\u0662e123]']
PLAIN = ['{}', '{"payload":"null","options":{"payloadType":"application/json"}}',
         '[1.5e10, 2E+99, -3e-7, 0.000001]', '{"text": "eee 123 e12"}', '[' + "9" * 199 + ']',
         json.dumps([{"id": 12, "completions": [{"runId": "run_1", "attempt": 1, "ok": True,
                                                 "output": "null", "usage": {"ms": 0.12}}]},
                     {"poll": 3}])]


@pytest.mark.parametrize("text", SUSPECT)
def test_what_the_full_search_finds_is_never_skipped(text: str) -> None:
    assert _SUSPECT.search(text) is not None or "NaN" in text or not text.isascii()
    assert may_be_suspect(text)


@pytest.mark.parametrize("text", PLAIN)
def test_plain_json_skips_the_full_search(text: str) -> None:
    assert not may_be_suspect(text) and _SUSPECT.search(text) is None
    assert loads_strict(text) == json.loads(text)


def test_random_texts_the_full_search_matches_are_all_suspect() -> None:
    pieces = ['1', '9', '0', '.', 'e', 'E', '+', '-', '[', ']', ',', ':', ' ', '"', 'a', 'N',
              'aN', 'Inf', 'inity', '\\u', 'd', 'D', '8', 'b', '\ud800', '\u0663', '{', '}']
    rng = random.Random(13)
    matched = 0
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        if _SUSPECT.search(text) is not None:
            matched += 1
            assert may_be_suspect(text), text
    assert matched > 1_000  # the corpus exercises the full search's every branch often


def test_the_strict_parser_still_refuses_non_finite_numbers_and_lone_surrogates() -> None:
    for text in ('{"a": NaN}', '[1e400]', '{"s": "\\ud800"}'):
        with pytest.raises(BadRequestError):
            loads_strict(text)


def _number(rng: random.Random) -> str:
    """A JSON number around a float's ends: up to 320 digits before the dot, an exponent of up
    to 3 digits (leading zeros too), either sign."""
    digits = rng.choice([rng.randint(1, 5), rng.randint(190, 320)])
    text = rng.choice(["", "-"]) + str(rng.randint(1, 9)) + "".join(
        rng.choice("0123456789") for _ in range(digits - 1))
    if rng.random() < 0.5:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 5)))
    if rng.random() < 0.8:
        exponent = str(rng.choice([rng.randint(0, 99), rng.randint(100, 400)]))
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + "0" * rng.randint(0, 1) + exponent
    return text


def _value(rng: random.Random) -> str:
    return rng.choice([
        _number(rng), _number(rng), "NaN", "Infinity", "-Infinity", '"NaN"', '"-Infinity"',
        '"' + rng.choice(["\\u", "\\U", "\\\\u", "\\x"]) + rng.choice(["d8", "D8", "dB", "Dc",
                                                                       "DF", "00", "0d"])
        + rng.choice(["00", "ff", "3D"]) + '"', '"\ud800"', '"a\udfffb"', "true", "null"])


def test_every_text_the_parser_reads_as_non_json_is_refused() -> None:
    """The oracle is Python's parser and `find_non_json`, not `_SUSPECT`: a text they find a
    non-finite number or a lone surrogate in is one the prefilter and the strict parser refuse
    (1 followed by 290 zeros, e99, is 1e389 and read as inf: it went through, rv13b)."""
    rng = random.Random(1313)
    refused = 0
    for _ in range(4_000):
        items = [_value(rng) for _ in range(rng.randint(1, 3))]
        text = rng.choice(["[" + ",".join(items) + "]", items[0],
                           "{" + ",".join(f'"k{n}": {v}' for n, v in enumerate(items)) + "}"])
        try:
            parsed = json.loads(text)
        except ValueError:  # \\U, \\x or a number past 4,300 digits: not JSON either way
            continue
        if find_non_json(parsed) is None:
            continue
        refused += 1
        assert may_be_suspect(text), text
        with pytest.raises(BadRequestError):
            loads_strict(text)
    assert refused > 1_000
