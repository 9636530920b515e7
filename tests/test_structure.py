"""The shape of the package, checked from its source with `ast` so anyone can repeat it:

(a) no import cycles among the modules of `trigger_local` and `tui`;
(b) no `# type: ignore` in `trigger_local/engine/` (it would hide a call between engine parts);
(c) no module over 400 lines;
(d) no exception class defined outside `trigger_local/errors.py`.

An import counts as an edge wherever it is written: at the top, inside a function, or under
`if TYPE_CHECKING:`. Two modules that name each other's types know each other, and a cycle
through a type-only import is the same knot in the design (the issue's `sdk/registry.py ↔
tasks.py` was one). `from pkg import name` is an edge to `pkg.name` when that is a module, else
to `pkg`; the implicit import of a module's parent packages is not an edge (every module has
it, and counting it would put each `__init__` that imports its children in a cycle).

ALLOW-LISTS: each entry names a file and the reason it may break a rule for now; an entry that no
longer occurs fails the test, so the lists can only shrink. They are empty.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trigger_local", "tui")
MAX_LINES = 400
ERRORS_MODULE = "trigger_local/errors.py"
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore")

#: (a) import cycles (as the set of modules in one strongly connected component) → why allowed
ALLOWED_CYCLES: dict[frozenset[str], str] = {}
#: (b) engine files with `# type: ignore` → why allowed
ALLOWED_TYPE_IGNORES: dict[str, str] = {}
#: (c) modules over MAX_LINES → why allowed
ALLOWED_LONG_MODULES: dict[str, str] = {}
#: (d) exception classes outside errors.py ("file:Class") → why allowed
ALLOWED_EXCEPTIONS: dict[str, str] = {}


# -- reading the source ------------------------------------------------------------------------
def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that `tree` (the source of `module`) imports, anywhere in it."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in source_files()}
    known = set(files)
    return {name: imports(ast.parse(path.read_text(encoding="utf-8")), name,
                          path.name == "__init__.py", known)
            for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def exception_classes() -> list[str]:
    """`file:Class` for every class (at any depth) that derives from an exception: a builtin
    one, a class found to be one here (to a fixed point), or a base named like one."""
    builtin = {name for name, value in vars(builtins).items()
               if isinstance(value, type) and issubclass(value, BaseException)}
    classes: list[tuple[str, str, list[str]]] = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                classes.append((rel(path), node.name, bases))
    exceptions = set(builtin)
    named_like = re.compile(r"(Error|Exception|Exit|Interrupt)$")
    changed = True
    while changed:
        before = len(exceptions)
        for _, name, bases in classes:
            if any(b in exceptions or named_like.search(b) for b in bases):
                exceptions.add(name)
        changed = len(exceptions) != before
    return sorted(f"{file}:{name}" for file, name, bases in classes
                  if any(b in exceptions or named_like.search(b) for b in bases))


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


# -- the checker checks what it should -----------------------------------------------------------
def test_the_graph_resolves_relative_and_type_checking_imports() -> None:
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
              "from .. import errors\nfrom .registry import Queue\n"
              "if TYPE_CHECKING:\n    from .tasks import Task\n"
              "def later():\n    from .client import get_client\n")
    known = {"trigger_local", "trigger_local.errors", "trigger_local.sdk",
             "trigger_local.sdk.registry", "trigger_local.sdk.tasks", "trigger_local.sdk.client"}
    found = imports(ast.parse(source), "trigger_local.sdk.x", False, known)
    assert found == {"trigger_local.errors", "trigger_local.sdk.registry",
                     "trigger_local.sdk.tasks", "trigger_local.sdk.client"}


def test_cycles_are_found_and_trees_pass() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


# -- the checks ---------------------------------------------------------------------------------
def test_no_import_cycles() -> None:
    found = {cycle: " → ".join(sorted(cycle)) for cycle in cycles(import_graph())}
    assert {c: path for c, path in found.items() if c not in ALLOWED_CYCLES} == {}
    assert [sorted(c) for c in ALLOWED_CYCLES if c not in found] == [], "stale allow-list entry"


def test_no_type_ignore_in_the_engine() -> None:
    found = sorted(rel(p) for p in (ROOT / "trigger_local" / "engine").rglob("*.py")
                   if TYPE_IGNORE.search(p.read_text(encoding="utf-8")))
    assert [f for f in found if f not in ALLOWED_TYPE_IGNORES] == []
    assert [f for f in ALLOWED_TYPE_IGNORES if f not in found] == [], "stale allow-list entry"


def test_no_module_over_400_lines() -> None:
    found = {rel(p): n for p in source_files() if (n := line_count(p)) > MAX_LINES}
    assert {f: n for f, n in found.items() if f not in ALLOWED_LONG_MODULES} == {}
    assert [f for f in ALLOWED_LONG_MODULES if f not in found] == [], "stale allow-list entry"


def test_every_exception_class_lives_in_errors_py() -> None:
    found = [c for c in exception_classes() if not c.startswith(ERRORS_MODULE + ":")]
    assert [c for c in found if c not in ALLOWED_EXCEPTIONS] == []
    assert [c for c in ALLOWED_EXCEPTIONS if c not in found] == [], "stale allow-list entry"


def test_the_exception_check_sees_errors_py() -> None:
    found = exception_classes()
    for name in ("TriggerLocalError", "ForbiddenError", "AttemptGone", "JsonTooDeepError",
                 "ProtocolError", "TaskNotFoundError"):
        assert f"{ERRORS_MODULE}:{name}" in found, name
