"""A project's `.env`, as `dev` (for its task processes) and `deploy` (for its image's) read it:
`NAME=value` lines, `export ` before a name, quotes around a value, `#` comments. A line that
is none of these (no `=`, no name, a quote left open) is skipped with one warning naming the
file and the line: it used to be dropped, or taken half, without a word."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..errors import ValidationError
from .common import err


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
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        problem = ("has no `=`: write NAME=value" if not sep
                   else "has no name before its `=`" if not key
                   else _open_quote(value))
        if problem:
            err().print(f"[yellow]Warning:[/yellow] {escape(str(path))}, line {number}, "
                        f"{problem}; the line is skipped.")
            continue
        env[key] = value.strip("'\"")
    return env


def _open_quote(value: str) -> str | None:
    """What is wrong with a value that opens a quote and does not close it."""
    if value[:1] in ("'", '"') and value.find(value[0], 1) < 0:
        return f"opens a quote ({value[0]}) it does not close"
    return None
