"""Every `trigger-local ...` command line in README.md and docs/*.md exists: its command path
answers `--help`, and every `--option` it shows is an option of that command. So the docs
cannot drift from the CLI again (docs/waits.md once said `trigger-local daemon start`).

Command lines are taken from code: fenced and indented blocks, and inline `code` spans.
The README's synopsis lines are understood too: `runs ls|show|logs` and `init | dev | up`
name several commands, each of which must exist."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from trigger_local.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NAME = re.compile(r"^[a-z][a-z0-9-]*$")
CALL = re.compile(r"(?<![\w/.-])trigger-local\s+(.+)")
CLICK_ROOT = typer.main.get_command(app)


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    text: str  # what follows `trigger-local `, up to a comment, `&&` or `;`


def _code_snippets(text: str) -> list[tuple[int, str]]:
    """(line number, code) for each line of a fenced or indented block and each inline span."""
    snippets: list[tuple[int, str]] = []
    prose: list[tuple[int, str]] = []
    fenced, previous_blank = False, True
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or (line.startswith("    ") and previous_blank and line.strip()):
            snippets.append((number, line))
            continue
        else:
            prose.append((number, line))
        previous_blank = not line.strip() or (line.startswith("    ") and previous_blank)
    # inline spans may wrap onto the next line of a paragraph
    joined = "\n".join(line for _, line in prose)
    starts = [number for number, _ in prose]
    for match in re.finditer(r"`([^`]+)`", joined):
        snippets.append((starts[joined.count("\n", 0, match.start())],
                         match.group(1).replace("\n", " ")))
    return snippets


def doc_commands() -> list[DocCommand]:
    found = []
    for path in DOCS:
        for number, code in _code_snippets(path.read_text()):
            # `... pause hello && trigger-local queues resume hello`
            for part in re.split(r"&&|;|\s#", code):
                for match in CALL.finditer(part):
                    text = match.group(1).split("`")[0].strip()
                    found.append(DocCommand(f"{path.relative_to(ROOT)}:{number}", text))
    return found


def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", {}) or {})


def _option_names(command: Any) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def resolve(text: str) -> list[tuple[list[str], set[str]]]:
    """The command paths a doc line names, each with the options it shows for it. Raises
    AssertionError naming the first word that is not a command where one is expected."""
    found: list[tuple[list[str], set[str]]] = []
    alternatives = [part.split() for part in text.split(" | ")]  # `init | dev | up [--port 8030]`
    parent: Any = CLICK_ROOT
    parent_path: list[str] = []
    for index, words in enumerate(alternatives):
        command, path = (CLICK_ROOT, []) if index == 0 else (parent, list(parent_path))
        leaf_words: list[str] = []
        group_options: set[str] = set()
        skip = False
        for position, word in enumerate(words):
            subcommands = _subcommands(command)
            if not subcommands:
                leaf_words = words[position:]
                break
            if skip:
                skip = False
                continue
            if word.startswith("-"):  # a group's own option: `trigger-local --home DIR runs ls`
                option = next((p for p in command.params if word in p.opts), None)
                assert option is not None, f"`trigger-local {' '.join(path)}` has no {word}"
                group_options.add(word)
                skip = not getattr(option, "is_flag", False)
                continue
            names = [w for w in word.split("|") if NAME.match(w)]
            assert names, (f"{word!r} where a command of `trigger-local {' '.join(path)}` is "
                           "expected")
            for name in names:
                assert name in subcommands, (f"`trigger-local {' '.join([*path, name])}` is not a "
                                             f"command (known: {', '.join(sorted(subcommands))})")
            parent, parent_path = command, list(path)
            if len(names) > 1:  # `runs ls|show|logs`: each is a leaf of the same group
                found.extend(([*path, name], set()) for name in names)
                command = None
                leaf_words = words[position + 1:]
                break
            command, path = subcommands[names[0]], [*path, names[0]]
        if command is None:
            # options and more alternatives after `ls|show|logs`: `[--follow]|cancel|replay`
            # `[--missed latest|all]`
            unbracketed = re.sub(r"\[[^\]]*\]", " ", " ".join(leaf_words))
            for word in unbracketed.split():
                for name in (w for w in word.split("|") if NAME.match(w)):
                    assert name in _subcommands(parent), ("`trigger-local "
                                                          f"{' '.join([*parent_path, name])}` is "
                                                          "not a command")
                    found.append(([*parent_path, name], set()))
            continue
        options = {m.group(0) for w in leaf_words for m in re.finditer(r"--[a-z][a-z0-9-]*", w)}
        found.append((path, options | group_options))
    return found


COMMANDS = doc_commands()
runner = CliRunner()


def test_the_docs_have_command_lines_to_check() -> None:
    where = {c.where.split(":")[0] for c in COMMANDS}
    assert "README.md" in where and "docs/waits.md" in where, where
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[:40]}" for c in COMMANDS])
def test_doc_command_parses(command: DocCommand) -> None:
    paths = resolve(command.text)
    assert paths, command
    for path, options in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (f"{command.where}: `trigger-local {' '.join(path)} --help` "
                                       f"failed: {result.output}")
        click_command = CLICK_ROOT
        for word in path:
            click_command = _subcommands(click_command)[word]
        unknown = options - _option_names(click_command)
        assert not unknown, (f"{command.where}: `trigger-local {' '.join(path)}` has no "
                             f"{', '.join(sorted(unknown))}")


def test_a_command_that_does_not_exist_is_caught() -> None:
    with pytest.raises(AssertionError, match="daemon"):
        resolve("daemon start")
    with pytest.raises(AssertionError, match="stop"):
        resolve("runs ls|stop")
    assert ([["up"], {"--port", "--detach"}] in [list(p)
                                                 for p in resolve("init | dev | up [--port 8030] "
                                                                  "[--detach]")])
