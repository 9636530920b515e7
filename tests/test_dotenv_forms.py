"""`.env` values mean what python-dotenv (which most projects' `.env` files are written for)
makes of them: a comment after a value is not part of it, a quoted value is what is between its
quotes, double quotes read escapes, and a quoted value may span lines (a PEM key). They were
taken with the comment, a stray trailing quote cut, `\\n` as two characters, and a key over lines
skipped — its base64 lines that end in `=` taken as variables of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_local.cli.dev import task_env

_PEM = '"-----BEGIN KEY-----\nMIIEvQIBADANBg==\n-----END KEY-----"'


@pytest.mark.parametrize(("line", "value"), [
    ("A=plain value # a comment", "plain value"),
    ("A='x' # quoted, then a comment", "x"),
    ('A="x"   # quoted, then a comment', "x"),
    ('A="x"#c', "x"),
    ("A=url#fragment", "url#fragment"),
    ('A=abc"', 'abc"'),
    ("A=\"'inner'\"", "'inner'"),
    ('A="a\\nb \\"q\\""', 'a\nb "q"'),
    ("A='lit\\n'", "lit\\n"),
    ("export   A=7", "7"),
    (f"A={_PEM}", _PEM[1:-1]),
])
def test_a_value_means_what_python_dotenv_makes_of_it(
        tmp_path: Path, line: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text(f"{line}\nZ=1\n")
    env = task_env(tmp_path)
    assert env["A"] == value and env["Z"] == "1"
    assert "MIIEvQIBADANBg" not in env  # a line of the key is not a variable
    assert capsys.readouterr().err == ""


def test_text_after_a_closing_quote_is_a_warning_not_half_a_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text('A="a" b\nZ=1\n')
    env = task_env(tmp_path)
    assert "A" not in env and env["Z"] == "1"
    assert capsys.readouterr().err.splitlines() == [
        f"Warning: {tmp_path / '.env'}, line 1, has text after its closing quote (\"): quote "
        "the whole value; the line is skipped."]
