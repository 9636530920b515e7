"""The engine's seams, read from the source with `ast` (a check anyone can repeat): only the
engine (and the daemon that builds it) holds the store; one way to record a change; the engine
has no mixins and hides no call between its parts; no import cycle in the core; no module of
the core is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_import_rules import imported_modules, imports_of, module_name

from trigger_local.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trigger_local"
#: the parts of the package this issue reshaped: engine, store, api, dispatch, executors, daemon
CORE = ["engine", "store", "api", "dispatch", "executors", "daemon.py", "daemon_core.py",
        "http_server.py", "supervise.py"]
MAX_LINES = 400


def sources(*parts: str) -> list[Path]:
    found: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def attribute_uses(path: Path, name: str) -> list[int]:
    """Lines where `<anything>.<name>` is read or called."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == name]


def calls_of(path: Path, receiver: str, method: str) -> list[int]:
    """Lines calling `<...>.<receiver>.<method>(...)`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == method and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == receiver]


def test_only_the_engine_and_the_daemon_hold_the_store() -> None:
    """The API, the dispatcher and the executors read through `engine.queries` (read-only)
    and write through the engine's methods."""
    allowed = ("engine/", "store/", "daemon_core.py", "peers.py")  # peers.py: the daemon's PG side
    offenders = {relative(p): attribute_uses(p, "store") for p in sources(".")
                 if not relative(p).startswith(allowed)}
    assert {path: lines for path, lines in offenders.items() if lines} == {}


@pytest.mark.parametrize("part", ["engine", "api", "dispatch", "executors"])
def test_only_the_daemon_knows_the_sqlite_store(part: str) -> None:
    """The engine receives a `Store` (store/interface.py); the others read through the engine.
    A second backend replaces `SqliteStore` in daemon_core.py and nowhere else."""
    offenders = {relative(p): sorted(n for n in imports_of(p)
                                     if n in ("trigger_local.store", "trigger_local.store.sqlite")
                                     or n.startswith("trigger_local.store.sqlite."))
                 for p in sources(part)}
    assert {path: names for path, names in offenders.items() if names} == {}


def _event_writes(path: Path) -> list[int]:
    return [line for method in ("append", "append_many") for owner in ("events", "_events")
            for line in calls_of(path, owner, method)]


def test_event_rows_are_written_by_tx_record_only() -> None:
    """`Tx.write_events`, the rows of what `Tx.record` and `Tx.record_many` queued, written as
    the unit ends (engine/front.py `_unit`), is the only writer."""
    offenders = {relative(p): _event_writes(p)
                 for p in sources(".") if not relative(p).startswith("store/")}
    unit = _event_writes(PACKAGE / "engine" / "unit.py")
    assert len(unit) == 1
    assert {path: lines for path, lines in offenders.items() if lines} == {
        "engine/unit.py": unit}


def test_only_the_engine_front_publishes() -> None:
    """Events reach the hub after their transaction commits (engine/front.py `_unit`); the hub
    itself publishes only its `Draining` notice."""
    offenders = {relative(p): calls_of(p, "hub", "publish") + calls_of(p, "hub", "publish_all")
                 for p in sources(".")}
    assert {path: lines for path, lines in offenders.items() if lines} == {
        "engine/front.py": calls_of(PACKAGE / "engine" / "front.py", "hub", "publish_all")}


def test_the_engine_is_one_class_without_mixins() -> None:
    assert Engine.__bases__ == (object,)
    for path in sources("engine"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        mixins = [node.name for node in ast.walk(tree)
                  if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin")]
        assert mixins == [], relative(path)


@pytest.mark.parametrize("part", ["engine", "store", "dispatch"])
def test_no_type_ignore_hides_a_call(part: str) -> None:
    offenders = [f"{relative(p)}:{n}" for p in sources(part)
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if "type: ignore" in line]
    assert offenders == []


def test_no_core_module_is_over_400_lines() -> None:
    sizes = {relative(p): len(p.read_text(encoding="utf-8").splitlines()) for p in sources(*CORE)}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def core_imports() -> dict[str, set[str]]:
    """Module → the core modules it imports, anywhere in it (under TYPE_CHECKING and inside
    functions too). `from pkg import mod` is an import of `pkg.mod`, not of `pkg`."""
    paths = {module_name(p): p for p in sources(*CORE)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found = imported_modules(ast.unparse(node), name, path.name == "__init__.py")
                found &= paths.keys()
                edges |= {m for m in found if not any(o.startswith(m + ".") for o in found)}
        graph[name] = edges - {name}
    return graph


def test_no_import_cycle_in_the_core() -> None:
    """A part imports what it calls and nothing imports back: the checkpointers reach the
    executor through executors/base.py's protocols, not by importing it."""
    graph = core_imports()

    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return seen

    assert sorted(m for m in graph if m in reaches(m)) == []
