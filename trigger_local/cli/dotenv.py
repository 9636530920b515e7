"""A project's `.env`, as `dev` (for its task processes) and `deploy` (for its image's) read it,
with python-dotenv's meaning of the common forms: `NAME=value` lines, `export ` before a name,
`#` comment lines and comments after a value (` # ...`), a value in single quotes taken as it
is, one in double quotes with `\\n`, `\\t`, `\\"` and `\\\\` read as escapes; either quote may
span lines (when its closing quote ends the value; else only its first line is skipped).
`${NAME}` is not expanded. A line that is none of these (no `=`, no name, a quote left open,
text after a closing quote) is skipped with one warning naming the file and the line: it used
to be dropped, or taken half, without a word."""

from __future__ import annotations

import re
from pathlib import Path

from rich.markup import escape

from ..errors import ValidationError
from .common import err

_EXPORT = re.compile(r"export\s+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_COMMENT = re.compile(r"\s*(#.*)?", re.DOTALL)  # what may follow a closing quote


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of the `.env` file at `path` (none when there is no such file);
    ValidationError for one that is not UTF-8 text."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text (byte {exc.start}): save it as "
                              "UTF-8") from None
    env: dict[str, str] = {}
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        first = number + 1
        line = lines[number].strip()
        number += 1
        if not line or line.startswith("#"):
            continue
        key, sep, value = _EXPORT.sub("", line, count=1).partition("=")
        key, value = key.strip(), value.strip()
        parsed, problem = _value(value) if sep and key else ("", None)
        if problem and not _closed(value):  # a quoted value over lines, if it closes well
            joined, at = value, number
            while not _closed(joined) and at < len(lines):
                joined += "\n" + lines[at]
                at += 1
            joined_value, joined_problem = _value(joined)
            if joined_problem is None:
                parsed, problem, number = joined_value, None, at
        problem = ("has no `=`: write NAME=value" if not sep
                   else "has no name before its `=`" if not key else problem)
        if problem:
            err().print(f"[yellow]Warning:[/yellow] {escape(str(path))}, line {first}, "
                        f"{problem}; the line is skipped.")
            continue
        env[key] = parsed
    return env


def _closing(value: str) -> int:
    """Where the quote `value` opens closes (-1: it does not)."""
    quote, at = value[0], 1
    while at < len(value):
        if value[at] == "\\" and quote == '"':
            at += 2
            continue
        if value[at] == quote:
            return at
        at += 1
    return -1


def _closed(value: str) -> bool:
    return _closing(value) >= 0


def _value(value: str) -> tuple[str, str | None]:
    """The value a line's text after `=` means, or what is wrong with it."""
    if value[:1] not in ("'", '"'):
        return re.sub(r"\s+#.*$", "", value), None
    quote, end = value[0], _closing(value)
    if end < 0:
        return "", f"opens a quote ({quote}) it does not close"
    if not _COMMENT.fullmatch(value[end + 1:]):
        return "", f"has text after its closing quote ({quote}): quote the whole value"
    inner = value[1:end]
    if quote == '"':
        inner = _ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[0]), inner)
    return inner, None
