"""Every ```python block in README.md and docs/*.md parses, and a block that imports from
`trigger_local` imports every name of `trigger_local` it uses: a reader who copies such a block
gets no NameError from a name the line above it forgot (docs/durability.md's steps example used
`wait` without importing it). Blocks without such an import are fragments and are not held to it;
the examples that run whole are run by tests/e2e/test_doc_examples.py."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

import trigger_local

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PUBLIC = set(trigger_local.__all__)


def python_blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", textwrap.dedent(match.group(1))))
    return found


def parse(code: str) -> ast.Module:
    """A block as a module, or — when it uses `await` at the top, as fragments do — as the
    body of an async function."""
    try:
        return ast.parse(code)
    except SyntaxError:
        return ast.parse("async def _fragment():\n" + textwrap.indent(code, "    "))


def missing_imports(tree: ast.Module) -> set[str]:
    imported = {alias.asname or alias.name.split(".")[0]
                for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names}
    used = {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return (used & PUBLIC) - imported


def imports_trigger_local(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "trigger_local"
               for node in ast.walk(tree))


def test_the_docs_show_python_blocks_that_import_trigger_local() -> None:
    assert sum(imports_trigger_local(parse(code)) for _, code in python_blocks()) >= 5


@pytest.mark.parametrize(("where", "code"), python_blocks(),
                         ids=[where for where, _ in python_blocks()])
def test_a_python_block_parses_and_imports_what_it_uses(where: str, code: str) -> None:
    tree = parse(code)  # a SyntaxError fails the test, naming the block
    if imports_trigger_local(tree):
        assert not missing_imports(tree), (
            f"{where} uses {sorted(missing_imports(tree))} of trigger_local without importing it")


def test_a_missing_import_is_caught() -> None:
    tree = parse("from trigger_local import task\n\n@task(id='x')\nasync def x(p, ctx):\n"
                 "    await wait.for_(seconds=1)\n")
    assert missing_imports(tree) == {"wait"}
