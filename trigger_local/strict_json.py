"""JSON at the edges: strict coming in, never failing going out.

Python's `json` reads and writes `NaN`, `Infinity` and lone UTF-16 surrogates (`"\\ud800"`),
none of which is JSON (RFC 8259) or text. Stored, they later break every answer that shows them
(`ValueError: Out of range float values`, `UnicodeEncodeError`). So:

- `loads_strict` (the API's request bodies and payload packets) refuses them with a 400 that
  names the field;
- `dumps_js` (what the task runtime sends: outputs, metadata, logs, and every API answer) writes
  them the way JavaScript's `JSON.stringify` does: NaN and ±Infinity become `null`, a lone
  surrogate becomes U+FFFD. It costs nothing for values that have none. `dumps_answer` (the
  API's answers, the channel's frames) writes compact UTF-8 and falls back to it.

`shown` writes a value that came in into an error message, in JSON's words.

Shared by the daemon, the SDK and the runtime: imports nothing of either."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from datetime import date, time
from typing import Any

from .errors import BadRequestError, JsonTooDeepError
from .limits import MAX_JSON_DEPTH, json_depth_at_most, loads

#: a character that is half of a UTF-16 pair: only ever alone in a Python str
_SURROGATE = re.compile("[\ud800-\udfff]")
#: what may spell a non-finite number or a lone surrogate in JSON text; a number token with a
#: 3-digit exponent or 200 digits before its dot may be too big for a float (1e400 parses as
#: inf, and so does 210 digits with the exponent e99: a float ends at 1.8e308)
_SUSPECT = re.compile(r"NaN|Infinity|\\u[dD][89a-fA-F]|[\ud800-\udfff]"
                      r"|(?:^|[:\[,])\s*-?(?:\d+(?:\.\d*)?[eE][+-]?\d{3}|\d{200})")
#: what any `_SUSPECT` number has in it: an exponent of 3 digits after a digit (or a dot), or
#: 200 digits in a row; a search with a one-character-class prefix, which the regex engine
#: skips to (`_SUSPECT`'s alternatives are tried at every position: 15 µs on a channel frame)
_BIG_EXPONENT = re.compile(r"[0-9.][eE][+-]?[0-9]{3}")
_MANY_DIGITS = re.compile(r"[0-9]{200}")
#: a JSON string (skipped), or a NaN / Infinity token outside strings
_NON_FINITE_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')
#: a surrogate escape in ASCII JSON text: a pair (kept) or a lone half (replaced)
_ESCAPED_SURROGATE = re.compile(r"(\\*)(?:(\\u[dD][89abAB][0-9a-fA-F]{2}"
                                r"\\u[dD][c-fC-F][0-9a-fA-F]{2})|\\u[dD][89a-fA-F][0-9a-fA-F]{2})")


class _Constant:
    """What the strict parser puts where the text had NaN, Infinity or -Infinity."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def may_be_suspect(text: str) -> bool:
    """False when `_SUSPECT` cannot match `text`, told with substring tests and two searches
    that skip ahead (~4 µs on a channel frame, a tenth of `_SUSPECT`'s time on a large
    payload): every request body and every channel frame is checked (issue #13)."""
    return "NaN" in text or "Infinity" in text or "\\u" in text or not text.isascii() \
        or _BIG_EXPONENT.search(text) is not None \
        or (len(text) >= 200 and _MANY_DIGITS.search(text) is not None)


def loads_strict(raw: str | bytes, what: str = "Request body", prefix: str = "") -> Any:
    """The JSON document in `raw`, refusing (BadRequestError, 400) text that is not UTF-8, is
    not JSON, nests deeper than limits.MAX_JSON_DEPTH, or holds NaN / Infinity / a lone
    surrogate anywhere — the error names the field (`payload.a`, `options.tags[0]`), prefixed
    with `prefix` when given."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        if not may_be_suspect(text) or not _SUSPECT.search(text):
            return loads(text)
        if not json_depth_at_most(text):
            raise JsonTooDeepError(MAX_JSON_DEPTH)
        value = json.loads(text, parse_constant=_Constant, object_pairs_hook=_object)
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"{what} is not valid UTF-8: {exc.reason}") from None
    except ValueError as exc:
        raise BadRequestError(f"{what} is not valid JSON: {_reason(exc)}") from exc
    return _checked(value, what, prefix)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as `json.loads` makes it (a repeated key keeps its last value), but keeping a
    value `find_non_json` refuses where its key is repeated: the text (a payload packet is
    stored as sent) still holds the NaN that a later value of its key hid from the check."""
    value = dict(pairs)
    if len(value) < len(pairs):
        for key, item in pairs:
            if find_non_json(item) is not None:
                value[key] = item
                break
    return value


def _reason(exc: ValueError) -> str:
    """Why the parser refused the text, without Python's advice for its own limit on digits
    (`sys.set_int_max_str_digits`), which is no use to whoever sent the document."""
    if "integer string conversion" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits()} digits"
    return str(exc)


def _checked(value: Any, what: str, prefix: str) -> Any:
    bad = find_non_json(value, prefix)
    if bad is not None:
        where, problem = bad
        raise BadRequestError(f"{what}: {where or 'the value'} {problem}. JSON has no NaN or "
                              "Infinity and text has no lone UTF-16 surrogates: send null, a "
                              "number or a string instead.", field=where)
    return value


def find_non_json(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first place in `value` (a parsed document) that is not JSON: (its path, what is
    wrong), or None."""
    if isinstance(value, _Constant):
        return path, f"is {value.name}"
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
        return path, "is a number too big to be finite (it reads as Infinity)" \
            if math.isinf(value) else f"is {value}"
    if isinstance(value, str):
        return (path, "has a lone UTF-16 surrogate") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return where, "is a key with a lone UTF-16 surrogate"
            if (found := find_non_json(item, where)) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := find_non_json(item, f"{path}[{index}]")) is not None:
                return found
    return None


#: an answer's encoder, made once: `json.dumps` with any option but the defaults makes a new
#: `JSONEncoder` per call (~3 µs of ~6 for a small answer; a trigger's answer and each channel
#: frame are one, issue #13)
_ANSWER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps_answer(value: Any) -> str:
    """An API answer or a channel frame: compact JSON text (not ASCII-escaped), or, when the
    value holds NaN or ±Infinity (stored before they were refused, a task's output), as
    `dumps_js` writes it. A lone surrogate stays in the text: encoding it fails
    (`SafeJSONResponse` then writes `dumps_js`, api/common.py)."""
    try:
        return _ANSWER.encode(value)
    except ValueError:
        return dumps_js(value)


#: `dumps_js`'s encoders by (default, separators): a handful of module functions and two
#: spellings; a caller with a new `default` each call gets an encoder of its own past the bound
_ENCODERS: dict[tuple[Callable[[Any], Any] | None, tuple[str, str] | None], json.JSONEncoder] = {}
_ENCODERS_MAX = 16


def _encoder(default: Callable[[Any], Any] | None,
             separators: tuple[str, str] | None) -> json.JSONEncoder:
    encoder = _ENCODERS.get((default, separators))
    if encoder is None:
        encoder = json.JSONEncoder(default=default, separators=separators)
        if len(_ENCODERS) < _ENCODERS_MAX:
            _ENCODERS[(default, separators)] = encoder
    return encoder


def dumps_js(value: Any, default: Callable[[Any], Any] | None = None,
             separators: tuple[str, str] | None = (",", ":")) -> str:
    """`json.dumps` (ASCII, as its default), with NaN/±Infinity as `null` and lone surrogates
    as U+FFFD (JavaScript's `JSON.stringify`). Its encoder is made once per `default` and
    `separators` (`json.dumps` with either made one per call: a task's output and each
    channel frame of its process are one, issue #13)."""
    text = _encoder(default, separators).encode(value)
    if "NaN" in text or "Infinity" in text:
        text = _NON_FINITE_TOKEN.sub(_null_outside_strings, text)
    if "\\ud" in text or "\\uD" in text:
        text = _ESCAPED_SURROGATE.sub(_pairs_only, text)
    return text


def _null_outside_strings(match: re.Match[str]) -> str:
    token = match.group(0)
    return token if token.startswith('"') else "null"


def _pairs_only(match: re.Match[str]) -> str:
    backslashes, pair = match.groups()
    if len(backslashes) % 2:  # `\\ud800`: an escaped backslash, then plain text
        return match.group(0)
    return backslashes + (pair or "\\ufffd")


def shown(value: Any, limit: int = 40) -> str:
    """A value that came in, for an error message: in JSON's words (`true`, `null`, `"text"`,
    not Python's `True`, `None`, `'text'`), cut to `limit` characters (a string may be
    megabytes); an array or an object by its kind, an integer too long to show by its digits, a
    date or time (TOML has them) in ISO 8601."""
    if isinstance(value, list | tuple | dict):
        return "an object" if isinstance(value, dict) else "an array"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** limit:
        try:
            return f"a number of {len(str(abs(value)))} digits"
        except ValueError:  # past Python's int-to-text limit (4,300 digits)
            return "a number of thousands of digits"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # a TOML date or time (trigger.toml) is no JSON value
        text = value.isoformat() if isinstance(value, date | time) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
